"""Export to ONNX / OpenVINO and run exported models: ``qem export`` (``models.export.exporter``), the runtime
backends under the Predictor (``models.export.runtime``), the format table (``models.export.formats``), the
exported graph (``models.export.graph``) and the measured ``auto`` choice (``models.export.auto``)."""
