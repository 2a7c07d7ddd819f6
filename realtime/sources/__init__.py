"""Sources: what a source string means and the readers behind it (``readers``), one capture thread per source with
its states and reconnection (``capture``), and the masking of credentials in anything printed (``redact``)."""
