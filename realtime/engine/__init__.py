"""The engine: batches of the freshest frames (``batcher``), letterbox and normalisation on the device
(``preprocess``), the inference stage around the Predictor (``stage``), and loading the network the command line
asks for (``model``)."""
