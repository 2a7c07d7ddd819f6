"""The output stage (``stage``: draws each result and hands it to the files, the message sinks, the window and the
browser view), recording per stream with segments and retention (``recording``), the MP4, JSONL and image files
(``files``) and whole writes that survive a kill (``whole_writes``)."""
