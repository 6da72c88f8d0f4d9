"""Every upstream work-around of the project, in one place.

Each shim names the error it fixes and is idempotent. ``apply_all()`` runs them all; the modules that
import an affected package call it first. Every shim has a test in ``tests/test_compat.py`` that
reproduces the upstream failure with the shim undone, and shows it gone with the shim applied.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable

_APPLIED: set[str] = set()
_SHIMS: dict[str, Callable[[], None]] = {}


def shim(name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(fn: Callable[[], None]) -> Callable[[], None]:
        _SHIMS[name] = fn
        return fn

    return register


def apply(name: str) -> None:
    if name in _APPLIED:
        return
    _SHIMS[name]()
    _APPLIED.add(name)


def apply_all() -> None:
    for name in _SHIMS:
        apply(name)


# ---------------------------------------------------------------------------------------------------
# 1. pytorchvideo 0.1.5 imports a module that torchvision 0.17 renamed.
#    Error: ModuleNotFoundError: No module named 'torchvision.transforms.functional_tensor'
#    (raised by `import languagebind`, which imports pytorchvideo.transforms at module top).
@shim("torchvision_functional_tensor")
def _alias_functional_tensor() -> None:
    if "torchvision.transforms.functional_tensor" in sys.modules:
        return
    private = importlib.import_module("torchvision.transforms._functional_tensor")
    sys.modules["torchvision.transforms.functional_tensor"] = private


# ---------------------------------------------------------------------------------------------------
# 2. robustbench 1.1.1 does `from autoattack import AutoAttack`, but the maintained release on PyPI
#    (pyautoattack 0.2.0) installs the module `pyautoattack`, with a keyword-only API.
#    Error: ModuleNotFoundError: No module named 'autoattack'  (on `import robustbench`).
#    The adapter exposes fra31's API (AutoAttack(model, norm=, eps=, version=, device=, log_path=, seed=),
#    run_standard_evaluation(x, y, bs=, state_path=)) on top of pyautoattack.
@shim("autoattack_module")
def _register_autoattack_adapter() -> None:
    if "autoattack" in sys.modules:
        return
    try:
        importlib.import_module("autoattack")
        return
    except ModuleNotFoundError:
        pass
    import pyautoattack

    class AutoAttack:  # fra31-compatible facade
        def __init__(self, model, norm="Linf", eps=0.3, seed=None, verbose=True, attacks_to_run=(),
                     version="standard", is_tf_model=False, device="cuda", log_path=None):
            kwargs = {"device": device, "eps": eps, "norm": norm, "seed": seed, "version": version}
            if version == "custom" and attacks_to_run:
                kwargs["attacks"] = list(attacks_to_run)
            self._inner = pyautoattack.AutoAttack(model, **kwargs)

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def run_standard_evaluation(self, x_orig, y_orig, bs=250, return_labels=False, state_path=None):
            x_adv, y_adv = self._inner.run_standard_evaluation(x_orig, y_orig, batch_size=bs,
                                                               state_path=state_path)
            return (x_adv, y_adv) if return_labels else x_adv

    module = types.ModuleType("autoattack")
    module.AutoAttack = AutoAttack
    state = types.ModuleType("autoattack.state")
    try:
        state.EvaluationState = importlib.import_module("pyautoattack.state").EvaluationState
    except (ModuleNotFoundError, AttributeError):
        class EvaluationState:  # robustbench only type-annotates with it
            pass

        state.EvaluationState = EvaluationState
    module.state = state
    sys.modules["autoattack"] = module
    sys.modules["autoattack.state"] = state


# ---------------------------------------------------------------------------------------------------
# 3. setuptools >= 82 removed pkg_resources; robustbench 1.1.1 (robustbench/loaders.py, a test
#    dependency) imports it, and so does imagecorruptions 1.1.2 (vendored in threats/corruptions/ic; the
#    package itself is only the reference of tests/test_vendored_corruptions.py).
#    Error: ModuleNotFoundError: No module named 'pkg_resources'.
#    The fix is the pin setuptools==80.10.2 in the lock; this check turns the raw traceback into one line.
@shim("pkg_resources_present")
def _check_pkg_resources() -> None:
    try:
        importlib.import_module("pkg_resources")
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "pkg_resources is missing (setuptools>=82 removed it); install setuptools<82 "
            "(the lock pins 80.10.2): pip install 'setuptools==80.10.2'"
        ) from exc


# ---------------------------------------------------------------------------------------------------
# 4. transformers >= 4.54 looks up ALL_ATTENTION_FUNCTIONS[config._attn_implementation]; languagebind's
#    configs declare no `sub_configs`, so the text/vision sub-configs keep _attn_implementation=None.
#    Error: KeyError: None  (in CLIPAttention.forward of every LanguageBind tower).
#    Fix: the sub-config classes of every languagebind modality default to "eager".
LANGUAGEBIND_MODALITIES = ("image", "audio", "thermal", "depth", "video")


def _eager_default_property(cls: type) -> None:
    if getattr(cls, "_rlbind_eager_default", False):
        return
    original = cls.__dict__.get("_attn_implementation") or cls._attn_implementation

    def getter(self):
        value = original.fget(self)
        return "eager" if value is None else value

    cls._attn_implementation = property(getter, original.fset)
    cls._rlbind_eager_default = True


@shim("languagebind_attn_default")
def _languagebind_attention_default() -> None:
    apply("torchvision_functional_tensor")
    for modality in LANGUAGEBIND_MODALITIES:
        cfg = importlib.import_module(f"languagebind.{modality}.configuration_{modality}")
        for cls_name in ("CLIPTextConfig", "CLIPVisionConfig"):
            _eager_default_property(getattr(cfg, cls_name))


# ---------------------------------------------------------------------------------------------------
# 5. transformers >= 4.46 CLIPVisionEmbeddings.forward rejects any input that is not image_size x
#    image_size. LanguageBind's audio tower takes [3, mel_bins, target_length] and sets image_size to a list.
#    Error: ValueError: Input image size (32*64) doesn't match model ([32, 64]*[32, 64]).
#    Fix: the languagebind modeling modules get an embeddings subclass whose forward has no size check
#    (the position grid was already resized by LanguageBind's resize_pos, so the shapes do match).
def _make_uncheckedembeddings(base: type) -> type:
    import torch

    class UncheckedCLIPVisionEmbeddings(base):
        def forward(self, pixel_values, interpolate_pos_encoding=False):
            batch_size = pixel_values.shape[0]
            target_dtype = self.patch_embedding.weight.dtype
            patch_embeds = self.patch_embedding(pixel_values.to(dtype=target_dtype))
            patch_embeds = patch_embeds.flatten(2).transpose(1, 2)
            class_embeds = self.class_embedding.expand(batch_size, 1, -1)
            embeddings = torch.cat([class_embeds, patch_embeds], dim=1)
            return embeddings + self.position_embedding(self.position_ids)

    UncheckedCLIPVisionEmbeddings._rlbind_unchecked = True
    return UncheckedCLIPVisionEmbeddings


@shim("languagebind_nonsquare_embeddings")
def _languagebind_nonsquare() -> None:
    apply("torchvision_functional_tensor")
    for modality in ("image", "audio", "thermal", "depth"):
        mod = importlib.import_module(f"languagebind.{modality}.modeling_{modality}")
        base = mod.CLIPVisionEmbeddings
        if getattr(base, "_rlbind_unchecked", False):
            continue
        mod.CLIPVisionEmbeddings = _make_uncheckedembeddings(base)


# ---------------------------------------------------------------------------------------------------
# 6. LanguageBind's resize_pos() writes vision_config.image_size = [s, s] (audio: [mel_bins, target_length])
#    into the live config, so save_pretrained -> from_pretrained fails.
#    Error: TypeError: unsupported operand type(s) for //: 'list' and 'int'.
#    Fix: the saved config carries the original int image_size (the list is rebuilt on load).
def restore_int_image_size(config) -> None:
    """Put an int image_size back into a LanguageBind vision config that resize_pos() turned into a list."""
    vision = getattr(config, "vision_config", None)
    size = getattr(vision, "image_size", None)
    if isinstance(size, (list, tuple)):
        # For image towers it is [s, s]; for audio the int is the pre-resize size kept on the embeddings.
        original = getattr(vision, "_rlbind_image_size", None)
        vision.image_size = int(original if original is not None else size[0])


@shim("languagebind_save_image_size")
def _languagebind_save_pretrained() -> None:
    apply("torchvision_functional_tensor")
    for modality in LANGUAGEBIND_MODALITIES:
        mod = importlib.import_module(f"languagebind.{modality}.modeling_{modality}")
        cls = getattr(mod, f"LanguageBind{modality.capitalize()}")
        if getattr(cls, "_rlbind_save_fixed", False):
            continue
        original_init = cls.__init__
        original_save = cls.save_pretrained

        def __init__(self, config, *args, _orig=original_init, **kwargs):
            size = getattr(config.vision_config, "image_size", None)
            if isinstance(size, int):
                config.vision_config._rlbind_image_size = size
            _orig(self, config, *args, **kwargs)

        def save_pretrained(self, *args, _orig=original_save, **kwargs):
            vision = self.config.vision_config
            live = vision.image_size
            restore_int_image_size(self.config)
            stash = vision.__dict__.pop("_rlbind_image_size", None)
            try:
                return _orig(self, *args, **kwargs)
            finally:
                vision.image_size = live
                if stash is not None:
                    vision._rlbind_image_size = stash

        cls.__init__ = __init__
        cls.save_pretrained = save_pretrained
        cls._rlbind_save_fixed = True


# ---------------------------------------------------------------------------------------------------
# 7. imagebind (imagebind-unofficial 0.1.1 = upstream ImageBind) reads audio with torchaudio.load, which
#    torchaudio >= 2.9 routes through TorchCodec (not in the lock; it needs FFmpeg's shared libraries).
#    Error: ImportError: TorchCodec is required for load_with_torchcodec. Please install torchcodec to use
#    this function.  (in imagebind.data.load_and_transform_audio_data)
#    Fix: imagebind.data sees a torchaudio whose `load` decodes with soundfile (in the lock), returning what
#    torchaudio.load returned: float32 [channels, samples] in [-1, 1] and the sample rate. The real
#    torchaudio module is left alone.
@shim("imagebind_audio_load")
def _imagebind_audio_load() -> None:
    data = importlib.import_module("imagebind.data")
    if getattr(data.torchaudio, "_rlbind_soundfile_load", False):
        return
    real = data.torchaudio

    def load(path, *args, **kwargs):
        import soundfile as sf
        import torch

        samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return torch.from_numpy(samples.T.copy()), sr

    proxy = types.ModuleType("torchaudio")
    proxy.__getattr__ = lambda name: getattr(real, name)  # everything else is the real module's
    proxy.load = load
    proxy._rlbind_soundfile_load = True
    data.torchaudio = proxy


# ---------------------------------------------------------------------------------------------------
# 8. imagebind.data.load_and_transform_video_data passes `sample_rate=` to EncodedVideo.from_path, a keyword
#    of pytorchvideo's unreleased main branch; the released pytorchvideo 0.1.5 (the lock's) lacks it.
#    Error: TypeError: EncodedVideo.from_path() got an unexpected keyword argument 'sample_rate'
#    Fix: imagebind.data sees an EncodedVideo whose from_path drops `sample_rate` (it sets the audio decoding
#    rate, and ImageBind decodes no audio: decode_audio=False).
@shim("imagebind_encoded_video_kwargs")
def _imagebind_encoded_video() -> None:
    data = importlib.import_module("imagebind.data")
    if getattr(data.EncodedVideo, "_rlbind_drops_sample_rate", False):
        return
    base = data.EncodedVideo

    class EncodedVideo(base):
        _rlbind_drops_sample_rate = True

        @classmethod
        def from_path(cls, file_path, decode_audio=True, decoder="pyav", sample_rate=None, **kwargs):
            return base.from_path(file_path, decode_audio=decode_audio, decoder=decoder, **kwargs)

    data.EncodedVideo = EncodedVideo


IMAGEBIND_EXTRA = ("the ImageBind backend needs the optional 'imagebind' extra: "
                   "pip install 'rlbind-bench[imagebind]' (imagebind-unofficial==0.1.1)")


def import_imagebind():
    """Import `imagebind` (the optional extra) with every shim it needs, and return the module; a missing
    package is one UserError line naming the extra."""
    from rlbind_bench.errors import UserError

    apply("torchvision_functional_tensor")  # imagebind.data imports pytorchvideo.transforms
    apply("pkg_resources_present")  # imagebind.data imports pkg_resources
    try:
        module = importlib.import_module("imagebind")
        importlib.import_module("imagebind.models.imagebind_model")
    except ModuleNotFoundError as exc:
        raise UserError(f"{IMAGEBIND_EXTRA}; missing module {exc.name!r}") from exc
    apply("imagebind_audio_load")
    apply("imagebind_encoded_video_kwargs")
    return module


def import_languagebind():
    """Import `languagebind` with every shim it needs, and return the module."""
    apply("torchvision_functional_tensor")
    apply("languagebind_attn_default")
    apply("languagebind_nonsquare_embeddings")
    apply("languagebind_save_image_size")
    return importlib.import_module("languagebind")
