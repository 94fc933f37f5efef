"""ONNX out and ONNX Runtime in: a skill's model exported to an ``.onnx`` file and run by ONNX
Runtime's CPU execution provider.

    export.py   ``export_onnx``: torch.onnx.export (the TorchScript exporter) with the output
                names a skill returns (``runtime.outputs.flatten_outputs``), dynamic batch and
                sequence axes; ``validate``: ONNX Runtime against PyTorch eager on several
                shapes, output by output, within the float32 parity tolerance
    runner.py   ``run_onnxruntime``: the ``onnxruntime`` target, exported once per input
                signature and proven through ``engines.parity.run_proven``

The target runs only when asked for (``device="onnxruntime"``): ``device="auto"`` never picks
it (its declaration ranks it below cpu, which always runs, and the runner declines a skill that
did not ask) until a later issue ranks the engines from measurements.  ``generate-skills export
--format onnx`` writes and validates the file.
"""
