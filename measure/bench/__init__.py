"""The benchmarks `generate-skills bench` runs, each reporting ratios against a peer timed in the
same run, on the machine ``skillmill.measure.machine`` describes:

    kernels.py   native SGEMM and fused ops vs numpy's BLAS and torch   (bench kernels)
    models.py    MiniLM: native executor vs PyTorch, ONNX Runtime, OpenVINO (bench models)
    modular.py   MiniLM: MAX, the Mojo path, native, PyTorch; compile times (bench modular)
    backends.py  any skill: every engine in its own process, alternated (bench backends);
                 backends_report.py writes its table, JSON, plots and HTML page
    serving.py   the HTTP server under load, batching on vs off          (bench serve)
"""
