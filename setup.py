from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="qem-pose",
    version="0.1.0",
    description="Quality-aware multi-person pose regression (CIR + QEM) with fused Triton/CUDA decode, in real time",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["models", "models.*", "kernels", "realtime", "realtime.*"]),
    package_data={"models": ["weights/*.pt"], "kernels": ["*.cu"], "realtime": ["assets/*"],
                  "realtime.publish": ["*.json"]},
    install_requires=[
        "torch>=2.4",
        "triton>=3.6",
        "numpy>=1.26",
        "opencv-python>=4.8",
        "av>=14",
        "pycocotools>=2.0.7",
        "tqdm>=4.60",
        "aiohttp>=3.9",  # the live view (HTTP, MJPEG and its WebSocket)
        "pyyaml>=6",     # the camera file
    ],
    entry_points={"console_scripts": ["qem = models.cli:main"]},
    extras_require={
        "cluster": ["ray>=2.40"],  # qem serve: a camera fleet on a Ray cluster
        "cuda": ["cupy-cuda13x>=14"],
        "deploy": ["onnx>=1.17", "onnxruntime>=1.20", "openvino>=2025.0", "nncf>=2.14"],
        "plot": ["matplotlib>=3.7"],
        "sinks": ["paho-mqtt>=2.0", "redis>=5.0", "aiohttp>=3.9", "jsonschema>=4.18", "pyyaml>=6"],
        "test": ["pytest>=8", "scipy>=1.11", "motmetrics>=1.4", "jsonschema>=4.18", "paho-mqtt>=2.0", "redis>=5.0"],
        "track-eval": ["motmetrics>=1.4"],
    },
)
