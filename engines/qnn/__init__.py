"""The ``qnn`` target: Qualcomm's QNN execution provider for ONNX Runtime, on its HTP (Hexagon
NPU) backend, which PyPI's ``onnxruntime-qnn`` wheel ships with an x86_64 emulator of the NPU.

    provider.py   the EP as an ONNX Runtime plugin library: ``onnxruntime_qnn`` is a module of its
                  own beside ``onnxruntime`` (the two packages coexist; the wheel depends on
                  onnxruntime>=1.24.2), registered once per process with
                  ``onnxruntime.register_execution_provider_library``; ``probe`` for detection,
                  ``qnn_session`` with the CPU fallback disabled, so a session that opens ran
                  every node on QNN
    quantize.py   the QDQ model QNN's HTP backend needs: the float32 ONNX export
                  (engines/onnxruntime/export.py) quantized with ONNX Runtime's QNN configuration
                  (``get_qnn_qdq_config``), calibrated on the batch the skill first runs
    runner.py     ``run_qnn``: exported and quantized once per input signature, a QNN session per
                  concrete shape (HTP graphs are static), proven twice on the first run: against
                  ONNX Runtime's CPU provider on the same QDQ model (cosine >= 0.99 per output)
                  and against PyTorch eager float32 (``engines.parity``, the ``qdq-w8a16``
                  tolerance)

Used only when asked for (``device="qnn"``).  The result's precision is ``qdq-w8a16``: weights
uint8, activations uint16 (runtime/precision.py says why not 8-bit activations).
"""
