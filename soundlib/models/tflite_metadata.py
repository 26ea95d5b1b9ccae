"""The TFLite metadata that MediaPipe's audio tasks read, written and read without MediaPipe.

A waveform model (:mod:`soundlib.models.tflite_export`) carries, as Google's published YAMNet classifier
does (``lite-model/yamnet/classification/tflite/1``, the reference this layout copies):

* a ``TFLITE_METADATA`` buffer (the ``ModelMetadata`` flatbuffer of ``metadata_schema.fbs``, file
  identifier ``M001``, ``min_parser_version`` 1.3.0): the input tensor's ``AudioProperties`` (sample
  rate, channels), the output tensor's score range [0, 1] and its labels file, an associated file of
  type ``TENSOR_AXIS_LABELS``;
* the labels file itself in a zip archive appended to the model (MediaPipe reads associated files from
  it; ``unzip -p model_waveform.tflite labels.txt`` prints them).

The metadata flatbuffer is built with the ``flatbuffers`` package (the field slots of
``metadata_schema.fbs``); the model is re-packed with TensorFlow's TFLite schema (the object API), as
the metadata populator of ``tflite-support`` does.
"""

from __future__ import annotations

import io
import zipfile
from typing import Sequence

from soundlib.errors import ModelError

__all__ = ["METADATA_NAME", "LABELS_NAME", "with_metadata", "read_metadata"]

#: The model metadata entry MediaPipe looks for.
METADATA_NAME = "TFLITE_METADATA"

#: The labels file inside the model (zip member, and the output tensor's associated file).
LABELS_NAME = "labels.txt"

_MIN_PARSER_VERSION = "1.3.0"  # AudioProperties came with metadata schema 1.3.0

_AUDIO_PROPERTIES, _FEATURE_PROPERTIES = 4, 1  # ContentProperties union members

_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


def _metadata_flatbuffer(*, name: str, description: str, version: str, author: str, license: str,
                         sample_rate: int, channels: int, input_name: str, input_description: str,
                         output_name: str, output_description: str) -> bytes:
    """The ``ModelMetadata`` flatbuffer (see the module docstring)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)

    def table(slots: Sequence[tuple[str, int, object]], n_fields: int) -> int:
        b.StartObject(n_fields)
        for kind, slot, value in slots:
            if kind == "offset":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "uint32":
                b.PrependUint32Slot(slot, value, 0)
            else:  # byte-sized enums and union types
                b.PrependUint8Slot(slot, value, 0)
        return b.EndObject()

    def vector(offsets: Sequence[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def floats(values: Sequence[float]) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    s = {key: b.CreateString(text) for key, text in {
        "name": name, "description": description, "version": version, "author": author, "license": license,
        "in": input_name, "in_desc": input_description, "out": output_name, "out_desc": output_description,
        "labels": LABELS_NAME, "labels_desc": "Labels for categories that the model can recognize.",
        "parser": _MIN_PARSER_VERSION}.items()}
    labels_file = table([("offset", 0, s["labels"]), ("offset", 1, s["labels_desc"]),
                         ("uint8", 2, _TENSOR_AXIS_LABELS)], 5)
    audio = table([("uint32", 0, int(sample_rate)), ("uint32", 1, int(channels))], 2)
    audio_content = table([("uint8", 0, _AUDIO_PROPERTIES), ("offset", 1, audio)], 3)
    feature = table([], 0)
    score_content = table([("uint8", 0, _FEATURE_PROPERTIES), ("offset", 1, feature)], 3)
    stats_max, stats_min = floats([1.0]), floats([0.0])
    stats = table([("offset", 0, stats_max), ("offset", 1, stats_min)], 2)
    files = vector([labels_file])
    input_md = table([("offset", 0, s["in"]), ("offset", 1, s["in_desc"]), ("offset", 3, audio_content)], 7)
    output_md = table([("offset", 0, s["out"]), ("offset", 1, s["out_desc"]), ("offset", 3, score_content),
                       ("offset", 5, stats), ("offset", 6, files)], 7)
    inputs, outputs = vector([input_md]), vector([output_md])
    subgraph = table([("offset", 2, inputs), ("offset", 3, outputs)], 10)
    subgraphs = vector([subgraph])
    root = table([("offset", 0, s["name"]), ("offset", 1, s["description"]), ("offset", 2, s["version"]),
                  ("offset", 3, subgraphs), ("offset", 4, s["author"]), ("offset", 5, s["license"]),
                  ("offset", 7, s["parser"])], 8)
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output())


def with_metadata(model: bytes, *, labels: Sequence[str], sample_rate: int, name: str, description: str,
                  version: str, author: str = "soundlib", license: str = "", channels: int = 1) -> bytes:
    """``model`` (a TFLite flatbuffer with one float32 audio input and one scores output) with MediaPipe's
    audio metadata and its labels file (see the module docstring). Needs TensorFlow (its TFLite schema)."""
    import importlib

    import flatbuffers
    import numpy as np

    from soundlib.runtime import import_tf

    import_tf()  # quietly, before the TFLite schema module below imports TensorFlow
    schema = importlib.import_module("tensorflow.lite.python.schema_py_generated")

    meta = _metadata_flatbuffer(
        name=name, description=description, version=version, author=author, license=license,
        sample_rate=sample_rate, channels=channels, input_name="audio_clip",
        input_description=f"Input audio clip to be classified ({sample_rate} Hz float32 waveform samples in range "
                          "-1.0..1.0).",
        output_name="probabilities",
        output_description=f"Probabilities in range 0..1.0 of the {len(labels)} classes (they sum to 1).")
    obj = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    if obj.metadata and any(m.name in (METADATA_NAME, METADATA_NAME.encode()) for m in obj.metadata):
        raise ModelError("the converted model already carries TFLite metadata")
    buf = schema.BufferT()
    buf.data = np.frombuffer(meta, np.uint8)
    obj.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(obj.buffers) - 1
    obj.metadata = [*(obj.metadata or []), entry]
    b = flatbuffers.Builder(len(model) + len(meta) + 4096)
    b.Finish(obj.Pack(b), file_identifier=b"TFL3")
    out = io.BytesIO(bytes(b.Output()))
    with zipfile.ZipFile(out, "a") as z:  # appended after the flatbuffer, as tflite-support's populator does
        z.writestr(LABELS_NAME, "".join(f"{label}\n" for label in labels))
    return out.getvalue()


def _table(buf: bytes, pos: int):
    from flatbuffers.table import Table

    return Table(bytearray(buf), pos)


def _field(tab, slot: int) -> int:
    return tab.Offset(4 + 2 * slot)


def _string(tab, slot: int) -> str | None:
    o = _field(tab, slot)
    return tab.String(o + tab.Pos).decode("utf-8") if o else None


def _sub(tab, slot: int):
    o = _field(tab, slot)
    return type(tab)(tab.Bytes, tab.Indirect(o + tab.Pos)) if o else None


def _items(tab, slot: int) -> list:
    o = _field(tab, slot)
    if not o:
        return []
    start, n = tab.Vector(o), tab.VectorLen(o)
    return [type(tab)(tab.Bytes, tab.Indirect(start + 4 * i)) for i in range(n)]


def read_metadata(model: bytes) -> dict:
    """What MediaPipe reads from a model: ``name``, ``version``, ``sample_rate``, ``channels``, the labels
    file's name and ``labels`` (from the appended zip). Raises :class:`ModelError` when there is none."""
    import flatbuffers

    model = bytes(model)
    if model[4:8] != b"TFL3":
        raise ModelError("not a TFLite model (no TFL3 identifier)")

    def root_of(buf: bytes):
        return _table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, bytearray(buf), 0))

    def uint(tab, slot):
        o = _field(tab, slot) if tab is not None else 0
        return tab.Get(flatbuffers.number_types.Uint32Flags, o + tab.Pos) if o else 0

    root, data = root_of(model), None
    for entry in _items(root, 6):  # Model.metadata: (name, buffer index)
        if _string(entry, 0) == METADATA_NAME:
            buffer = _items(root, 4)[uint(entry, 1)]  # Model.buffers
            d = _field(buffer, 0)
            start, n = buffer.Vector(d), buffer.VectorLen(d)
            data = model[start:start + n]
    if data is None:
        raise ModelError(f"the model has no {METADATA_NAME} (MediaPipe's audio tasks need it)")
    meta = root_of(data)
    sub = _items(meta, 3)[0]
    inp, out = _items(sub, 2)[0], _items(sub, 3)[0]
    content = _sub(inp, 3)
    props = _sub(content, 1) if content is not None else None
    label_files = [name for name in (_string(f, 0) for f in _items(out, 6)) if name]
    labels = None
    if label_files:
        try:
            with zipfile.ZipFile(io.BytesIO(model)) as z:
                labels = z.read(label_files[0]).decode("utf-8").splitlines()
        except (zipfile.BadZipFile, KeyError) as exc:
            raise ModelError(f"the model's labels file {label_files[0]!r} is not in its archive ({exc})") from None
    return {"name": _string(meta, 0), "version": _string(meta, 2), "min_parser_version": _string(meta, 7),
            "sample_rate": uint(props, 0), "channels": uint(props, 1),
            "labels_file": label_files[0] if label_files else None, "labels": labels}
