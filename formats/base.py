"""What a format module declares (``formats/<name>.py`` builds one ``Format`` and registers it).

Signatures of the functions a format supplies (all plain module-level functions, so the code
fingerprints can follow them):

- ``Source.to_onnx(files, inputs, outputs, opset, *, lazy=False) -> onnx.ModelProto``
  ``files``: role -> what the role gives (see ``Role.kind``): a local path for a ``file``
  role, the directory its files landed in for a ``tree`` role, the recipe's value for a
  ``value`` role; a recipe build also passes the recipe's other fetched files under keys with
  a colon (``mean_file:<input>``, ``file:<N>``), which a format ignores; ``inputs``: input
  name -> static shape (the
  recipe's ``inputs.<name>.shape``; preprocessing is embedded afterwards by the build, for every
  format alike); ``outputs``: names to cut the graph at (or None); with ``lazy`` the model's
  big weights may be left in the source files as placeholders (``converters.lazy``).
- ``Source.reference(files, outputs, choice) -> Runner``: the source model in its own
  framework's runtime, able to return ``outputs``; ``choice`` is the recipe's
  ``verify.reference`` (one of ``Source.references``).
- ``Target.from_onnx(model, out_dir, options) -> list[Path]``: write the artifact files into
  ``out_dir``. ``model`` is a path to an ONNX file (the build's export step) or an
  ``onnx.ModelProto`` (the CLI; already FP16 when the ONNX target asked), with placeholders
  (``converters.lazy``) only for a target that says ``takes_lazy``.
  ``options``: the recipe target (``precision``, ``opset``) and, from the CLI, ``cli: True``.
- ``Target.runner(out_dir, prefer) -> Runner``: the artifact in its deployment runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

ROLE_KINDS = ("file", "tree", "value")


@dataclass(frozen=True)
class Role:
    """One key of a recipe's ``source`` (e.g. ``prototxt``), of one of three kinds:

    - ``file``: one pinned file (url, sha256, size), fetched to ``build/<id>/source/<url's
      base name>``; the format gets its path;
    - ``tree``: a list of pinned files, each with its own ``path`` inside a source tree,
      fetched to ``build/<id>/source/<role>/<path>`` (model code, importable from there); the
      format gets the directory ``build/<id>/source/<role>``;
    - ``value``: a plain value written in the recipe (``schema``: its JSON Schema), e.g. an
      entry point or keyword arguments; the format gets the value. It is part of the cache keys
      of every stage that reads the source (convert, reference, measure).
    """

    name: str
    description: str  # the schema's description of the key
    required: bool = True
    # One-shot CLI: the flags that give this file (first = the canonical ``--<name>``) and help.
    flags: tuple[str, ...] = ()
    help: str = ""
    noun: str = ""  # in messages: "the weights"
    kind: str = "file"
    schema: dict | None = None  # a value role's JSON Schema (type, pattern, x-expected, ...)
    # Roles this one only goes with (a checkpoint with the entry that builds the network):
    # giving it without one of them is refused by the schema.
    needs: tuple[str, ...] = ()
    cli: bool = True  # a ``file`` role the one-shot ``zoomake convert`` takes as a flag

    def __post_init__(self):
        if self.kind not in ROLE_KINDS:
            raise ValueError(f"role {self.name!r}: kind {self.kind!r} is not one of {ROLE_KINDS}")
        if (self.kind == "value") != (self.schema is not None):
            raise ValueError(f"role {self.name!r}: a value role, and only one, has a schema")

    def cli_flags(self) -> tuple[str, ...]:
        return self.flags or (f"--{self.name}",)


def given_files(given: dict, input_model=None) -> dict:
    """The default ``Source.cli_files``: the files as the flags gave them (a format whose
    ``--input_model`` file fills a role says so in its own ``cli_files``)."""
    return given


@dataclass(frozen=True)
class Source:
    roles: tuple[Role, ...]
    to_onnx: Callable
    reference: Callable
    references: tuple[str, ...] = ("auto",)  # verify.reference values it understands
    reference_runtime: str = ""  # what runs the reference, for messages ("onnxruntime")
    # A side runtime (``pipelines.runtimes.side``) the reference runs in and the build sets up
    # itself before the first task that needs it (``zoomake setup-runtime <name>``, no options).
    side_runtime: str = ""
    layouts: tuple[str, ...] = ("NCHW", "NHWC")  # the recipe's inputs.<name>.layout it takes
    # Files given elsewhere in the recipe that the converter also reads (documentation only).
    companions: tuple[str, ...] = ()
    # One-shot CLI: the usage in the "no source" error, the suffix ``--input_model`` takes for
    # this format, and ``cli_files(given, input_model) -> files`` turning the flags' files
    # (role -> path, only those given) into the source files (checks, defaults, swaps).
    usage: str = ""
    model_suffix: str = ""
    cli_files: Callable = given_files
    # ``input_names(files) -> [name]``: the model's inputs in order, before any conversion (the
    # CLI's ``--input``/``--input-shape`` without a name refer to them).
    input_names: Callable | None = None
    # Roles of which a recipe gives exactly one (PyTorch: an archive, a TorchScript file or
    # the entry of the model's code); empty: the required roles are what it needs.
    one_of: tuple[str, ...] = ()
    # ``detection_cuts(files) -> {output: {"keep_top_k": k, "top_k": t,
    # "confidence_threshold": c}}``: the cuts of the source's detection layers, for
    # ``compare: detections`` (ties at a cut, ``pipelines.verify.metrics.DetectionCheck``);
    # a recipe's ``verify.outputs.<name>.cuts`` overrides them.
    detection_cuts: Callable | None = None

    def functions(self) -> list[Callable]:
        return [self.to_onnx, self.reference]

    def main_role(self) -> str:
        return self.roles[0].name

    def roles_of(self, kind: str) -> list[Role]:
        return [r for r in self.roles if r.kind == kind]

    def cli_roles(self) -> list[Role]:
        """The roles the one-shot CLI takes as file flags."""
        return [r for r in self.roles if r.kind == "file" and r.cli]


@dataclass(frozen=True)
class Target:
    files: tuple[str, ...]  # the artifact files in out_dir, the main one first
    precisions: tuple[str, ...]
    from_onnx: Callable
    runner: Callable
    suffix: str  # the CLI's output suffix of the main file (``-o x.xml``)
    # from_onnx takes a model whose big weights are placeholders left in their files
    # (converters.lazy): ONNX and OpenVINO do; the others get every value in memory.
    takes_lazy: bool = False
    # ``(user's main file, artifact file) -> the user's file for it``, for names that are not
    # a suffix swap (MXNet: ``-o x-symbol.json`` -> ``x-0000.params``); None: the swap.
    companion_name: Callable | None = None
    side_runtime: str = ""  # as Source.side_runtime, for the artifact's runner

    def functions(self) -> list[Callable]:
        return [self.from_onnx, self.runner]

    def companion_suffixes(self) -> list[tuple[str, str | None]]:
        """``[(artifact file, suffix of the user's file or None for the main file)]``, the main
        file last (the CLI moves it into place last, so a pair is complete when it appears)."""
        main, *rest = self.files
        return [(n, n[n.index(".") :]) for n in rest] + [(main, None)]

    def user_path(self, out, name: str, suffix: str | None):
        """Where the CLI puts artifact file ``name`` for ``-o out`` (see companion_suffixes)."""
        if suffix is None:
            return out
        return self.companion_name(out, name) if self.companion_name else out.with_suffix(suffix)


@dataclass(frozen=True)
class Format:
    name: str
    title: str  # one line for docs and help: "Caffe (prototxt + caffemodel)"
    short: str  # the name in prose: "Caffe", "ONNX", "OpenVINO IR"
    source: Source | None = None
    target: Target | None = None
    # Third-party import names it needs beyond zoomake's core, and the pip extra giving them.
    packages: tuple[str, ...] = ()
    extra: str | None = None
    purpose: str = ""  # what the user asked for that needs ``packages`` (error messages)
    notes: dict = field(default_factory=dict)
