"""OpenVINO on the CPU: ``openvino.convert_model``, compiled with an explicit precision hint
that is read back from the compiled model."""
