"""The format registry (formats/): every behaviour of the registry, and each built-in format on
it against the converter and runtime calls it replaced (byte for byte; runners numerically)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

import formats
from converters.errors import ConversionError
from formats import Format, Role, Source, Target
from formats import schema as schema_parts

REPO = Path(__file__).resolve().parents[1]


def _toy(name="toy", roles=("toyfile",), suffix=".toy") -> Format:
    def nothing(*args, **kwargs):
        raise AssertionError("not called")

    return Format(
        name=name,
        title="Toy",
        short="Toy",
        source=Source(
            roles=tuple(Role(r, f"{r} file.") for r in roles), to_onnx=nothing, reference=nothing
        ),
        target=Target(
            files=(f"model{suffix}",),
            precisions=("fp32", "int8"),
            from_onnx=nothing,
            runner=nothing,
            suffix=suffix,
        ),
    )


# -- registry behaviours ----------------------------------------------------------------------
def test_builtin_formats_in_order():
    assert formats.source_names() == ["caffe", "onnx", "pytorch", "mxnet"]
    assert formats.target_names() == ["caffe", "onnx", "openvino", "pytorch", "mxnet"]
    assert formats.suffixes() == {".prototxt": "caffe", ".onnx": "onnx", ".xml": "openvino",
                                  ".pt2": "pytorch", ".json": "mxnet"}  # fmt: skip


@pytest.mark.parametrize(
    "fmt, message",
    [
        (_toy(name="onnx"), "format 'onnx' registered twice"),
        (
            Format(
                "toy",
                "Toy",
                "Toy",
                target=Target(("model.bin", "model.toy"), ("fp32",), print, print, ".toy"),
            ),
            "format 'toy': the main artifact file model.bin (the first of Target.files) must "
            "have the output suffix .toy",
        ),
        (_toy(suffix=".xml"), "format 'toy': output suffix .xml is taken by format 'openvino'"),
        (
            _toy(roles=("prototxt",)),
            "format 'toy': source role 'prototxt' is taken by format 'caffe'",
        ),
    ],
)
def test_duplicates_are_refused(fmt, message):
    before = formats.all_formats()
    with pytest.raises(RuntimeError) as err:
        formats.register(fmt)
    assert str(err.value) == message
    assert formats.all_formats() == before  # nothing half-registered


@pytest.mark.parametrize(
    "kind, message",
    [
        (
            "target",
            "target format 'tflite' is not supported (caffe, onnx, openvino, pytorch, mxnet)",
        ),
        ("source", "source framework 'tflite' is not supported (caffe, onnx, pytorch, mxnet)"),
        (None, "unknown format 'tflite' (caffe, onnx, openvino, pytorch, mxnet)"),
    ],
)
def test_unknown_format_is_one_line_naming_the_known(kind, message):
    with pytest.raises(ConversionError) as err:
        formats.get("tflite", kind)
    assert str(err.value) == message
    with pytest.raises(ConversionError, match="source framework 'openvino' is not supported"):
        formats.get("openvino", "source")  # a target only


def test_unknown_target_through_the_build_and_runtimes(tmp_path):
    from pipelines.build.steps import export
    from pipelines.errors import ZoomakeError
    from pipelines.runtimes.choose import open_artifact, open_reference

    with pytest.raises(ConversionError, match=r"^target format 'tflite' is not supported \("):
        export(tmp_path / "m.onnx", {"format": "tflite"}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ZoomakeError, match="target format 'tflite' is not supported"):
        open_artifact("tflite", tmp_path)
    with pytest.raises(ZoomakeError, match="source framework 'tflite' is not supported"):
        open_reference("tflite", {}, [])
    assert formats.artifact_names("tflite") == []


def test_schema_format_parts_equal_the_registry():
    schema = json.loads((REPO / "schemas" / "recipe.schema.json").read_text())
    assert schema_parts.differences(schema, formats.all_formats()) == [], (
        "run `python -m formats --write-schema`"
    )
    enum = schema["$defs"]["source"]["properties"]["framework"]["enum"]
    assert enum == formats.source_names()
    assert schema["$defs"]["target"]["properties"]["format"]["enum"] == formats.target_names()
    assert (REPO / "pipelines" / "recipes" / "recipe.schema.json").resolve() == (
        REPO / "schemas" / "recipe.schema.json"
    )  # one schema file; pipelines/ links to it


def test_schema_rewrite_adds_a_new_format_and_nothing_else(tmp_path):
    import jsonschema

    text = (REPO / "schemas" / "recipe.schema.json").read_text()
    assert schema_parts.rewrite(text, formats.all_formats()) == text  # current: untouched
    new = schema_parts.rewrite(text, [*formats.all_formats(), _toy()])
    data = json.loads(new)
    assert schema_parts.differences(data, [*formats.all_formats(), _toy()]) == []
    assert data["$defs"]["source"]["properties"]["toyfile"]["description"] == "toyfile file."
    assert "int8" in data["$defs"]["target"]["properties"]["precision"]["enum"]
    old = json.loads(text)
    for part in schema_parts.OWNED:  # only the owned parts changed
        node_old, node_new = old, data
        for key in part[:-1]:
            node_old, node_new = node_old[key], node_new[key]
        node_new[part[-1]] = node_old[part[-1]]
    assert data == old
    # The rewritten schema's source rules accept the new format's files and refuse a mix.
    data = json.loads(new)
    source_schema = {"$defs": data["$defs"], **data["$defs"]["source"]}
    validator = jsonschema.Draft202012Validator(source_schema)
    ref = {"url": "https://example.org/m.toy", "sha256": "0" * 64, "size": 1}
    assert list(validator.iter_errors({"framework": "toy", "toyfile": ref})) == []
    mixed = list(validator.iter_errors({"framework": "toy", "toyfile": ref, "onnx": ref}))
    assert [e.schema.get("x-pointer") for e in mixed if e.validator == "not"] == ["onnx"]
    assert list(validator.iter_errors({"framework": "toy"}))  # its file is required


def _convert_parser() -> argparse.ArgumentParser:
    from pipelines.cli.main import make_parser

    sub = next(a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["convert"]


def test_cli_choices_and_flags_come_from_the_registry():
    actions = {a.dest: a for a in _convert_parser()._actions}
    assert list(actions["to"].choices) == formats.target_names()
    assert list(actions["src_framework"].choices) == formats.source_names()
    for fmt in formats.sources():
        for role in fmt.source.cli_roles():
            assert actions[role.name].option_strings == list(role.cli_flags())
        # Trees, values and recipe-only files (a PyTorch checkpoint) are no flag.
        for role in fmt.source.roles:
            if role not in fmt.source.cli_roles():
                assert role.name not in actions, role.name
    assert {r.name for r in formats.source("pytorch").cli_roles()} == {"pt2", "torchscript"}


def test_cli_output_suffix_and_companions(tmp_path):
    from pipelines.build.steps import output_files, output_format

    for fmt in formats.targets():
        out = tmp_path / f"net{fmt.target.suffix}"
        assert output_format(out) == fmt.name
        files = output_files(out, fmt.name)
        assert files[0] == out and len(files) == len(fmt.target.files)
    # MXNet's pair is not a suffix swap: load_checkpoint("net", 0) reads both
    assert output_files(tmp_path / "net-symbol.json", "mxnet") == [
        tmp_path / "net-symbol.json", tmp_path / "net-0000.params"]  # fmt: skip
    with pytest.raises(ConversionError) as err:
        output_format(tmp_path / "net.tflite")
    assert str(err.value).endswith(
        "use .prototxt (caffe), .onnx (onnx), .xml (openvino), .pt2 (pytorch), .json (mxnet), or --to FORMAT"
    )


def test_format_code_is_in_the_fingerprint_of_the_stages_using_it():
    from pipelines.build.fingerprints import Scanner, fingerprint

    scanner = Scanner(REPO)

    def files(action, *uses):
        _, covered = fingerprint(scanner, "pipelines.build.actions", action,
                                 formats.fingerprint_entries(*uses))  # fmt: skip
        return set(covered["files"])

    caffe_convert = files("act_convert", ("to_onnx", "caffe"))
    onnx_convert = files("act_convert", ("to_onnx", "onnx"))
    assert {"formats/caffe.py", "converters/caffe/convert.py"} <= caffe_convert
    assert "converters/caffe/convert.py" not in onnx_convert
    assert "converters/onnx_source.py" in onnx_convert
    export_ov = files("act_export", ("from_onnx", "openvino"))
    assert {"formats/openvino.py", "converters/openvino_export.py"} <= export_ov
    assert not any(f.startswith("converters/onnx2caffe/") for f in export_ov)
    measure = files("act_measure", ("reference", "caffe"), ("runner", "openvino"))
    assert {
        "pipelines/runtimes/opencv.py",
        "pipelines/runtimes/choose.py",
        "formats/openvino.py",
    } <= measure
    assert "converters/caffe/convert.py" not in measure  # the reference shares no converter code
    assert files("act_verify", ("files", "caffe")) >= {"formats/caffe.py"}


def test_extras_and_docs_table():
    from converters.optional import require

    assert formats.extras() == {
        "openvino": ("openvino", "OpenVINO IR (format: openvino, -o model.xml)"),
        "torch": (
            "pytorch",
            "PyTorch (framework: pytorch, format: pytorch, --torch, -o model.pt2)",
        ),
    }
    assert require("openvino").__name__ == "openvino"
    doc = (REPO / "docs" / "supported_layers.md").read_text()
    assert formats.markdown() in doc
    for fmt in formats.all_formats():
        assert f"| `{fmt.name}` |" in doc


# -- the built-in formats on the registry = the direct calls they replaced --------------------
@pytest.fixture(scope="module")
def det1(models_dir, tmp_path_factory):
    from converters.caffe.convert import convert_caffe
    from converters.io import save_onnx

    tmp = tmp_path_factory.mktemp("det1")
    files = {"prototxt": models_dir / "mtcnn/det1.prototxt",
             "caffemodel": models_dir / "mtcnn/det1.caffemodel"}  # fmt: skip
    shapes = {"data": [1, 3, 24, 30]}
    direct = convert_caffe(files["prototxt"], files["caffemodel"], input_shapes=shapes,
                           opset=17).materialize()  # fmt: skip
    onnx_path = tmp / "model.onnx"
    save_onnx(direct, onnx_path)
    return files, shapes, direct, onnx_path, tmp


def test_sources_equal_the_direct_converter_calls(det1):
    from converters.onnx_source import load_onnx_source

    files, shapes, direct, onnx_path, _ = det1
    via = formats.source("caffe").to_onnx(files, shapes, None, 17)
    assert via.SerializeToString() == direct.SerializeToString()
    from converters.lazy import materialize

    lazy = formats.source("caffe").to_onnx(files, shapes, None, 17, lazy=True)
    assert materialize(lazy).SerializeToString() == direct.SerializeToString()
    via_onnx = formats.source("onnx").to_onnx({"onnx": onnx_path}, shapes, ["conv3"], 13)
    want = load_onnx_source(onnx_path, shapes, outputs=["conv3"], opset=13)
    assert via_onnx.SerializeToString() == want.SerializeToString()


def _bytes(paths) -> dict[str, bytes]:
    return {Path(p).name: Path(p).read_bytes() for p in paths}


@pytest.mark.parametrize(
    "name, options",
    [("onnx", {}), ("onnx", {"precision": "fp16"}), ("onnx", {"opset": 13}),
     ("openvino", {}), ("openvino", {"precision": "fp16"}), ("caffe", {})],
)  # fmt: skip
def test_targets_equal_the_direct_converter_calls(det1, tmp_path, name, options):
    from converters.fp16 import to_fp16
    from converters.io import load_onnx, save_onnx
    from converters.onnx2caffe import onnx_to_caffe
    from converters.openvino_export import export_openvino
    from pipelines.build.steps import export

    _, _, _, onnx_path, _ = det1
    via = export(onnx_path, {"format": name, **options}, tmp_path / "via")
    want_dir = tmp_path / "direct"
    want_dir.mkdir()
    precision = options.get("precision", "fp32")
    if name == "onnx":
        import onnx

        model = load_onnx(onnx_path)
        if "opset" in options:
            model = onnx.version_converter.convert_version(model, options["opset"])
            model.ir_version = onnx.helper.find_min_ir_version_for(list(model.opset_import))
        if precision == "fp16":
            model = to_fp16(model, keep_io_types=True)
        save_onnx(model, want_dir / "model.onnx")
    elif name == "openvino":
        export_openvino(onnx_path, want_dir / "model.xml", precision)
    else:
        onnx_to_caffe(load_onnx(onnx_path), want_dir / "model.prototxt",
                      want_dir / "model.caffemodel")  # fmt: skip
    assert [p.name for p in via] == list(formats.target(name).files)
    assert _bytes(via) == _bytes(sorted(want_dir.iterdir()))


def test_cli_writer_equals_the_build_export(det1, tmp_path):
    """write_model (the CLI's, from an in-memory model) writes what export (the build's, from
    the file) writes, for every target."""
    from pipelines.build.steps import export, write_model

    _, _, direct, onnx_path, _ = det1
    for fmt in formats.targets():
        main = tmp_path / fmt.name / "cli" / fmt.target.files[0]
        cli = write_model(direct, main, fmt.name)
        build = export(onnx_path, {"format": fmt.name}, tmp_path / fmt.name / "build")
        assert _bytes(cli) == _bytes(build), fmt.name


def test_runners_through_the_registry_agree(det1):
    """Every target's artifact runner against the Caffe source's reference runner (OpenCV)."""
    files, _, _, onnx_path, tmp = det1
    reference = formats.source("caffe").reference(files, [], "opencv")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 24, 30)).astype(np.float32)
    want = reference.run({"data": x})
    assert sorted(want) == ["conv4-2", "prob1"]
    for fmt in formats.targets():
        out = tmp / f"run-{fmt.name}"
        formats.target(fmt.name).from_onnx(onnx_path, out, {})
        runner = fmt.target.runner(out, list(want))
        got = runner.run({runner.inputs[0].name: x})
        for name in want:
            np.testing.assert_allclose(got[name], want[name], atol=1e-5, err_msg=fmt.name)
    onnx_ref = formats.source("onnx").reference({"onnx": onnx_path}, [], "auto")
    got = onnx_ref.run({"data": x})
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)


def test_a_new_format_reaches_fetch_tasks_and_cli(monkeypatch, tmp_path):
    """Registered, a format's roles are fetched, its artifact files are the tasks' targets and
    its name is a CLI choice, with no edit elsewhere."""
    from pipelines.build.layout import artifact_files as _artifact_files
    from pipelines.recipes.checks import recipe_files

    monkeypatch.setitem(formats._REGISTRY, "toy", _toy())
    ref = {"url": "https://example.org/m.toy", "sha256": "0" * 64, "size": 1}
    assert recipe_files({"source": {"framework": "toy", "toyfile": ref}}) == {"source/toyfile": ref}
    assert _artifact_files(tmp_path, "toy") == [tmp_path / "model.toy"]
    actions = {a.dest: a for a in _convert_parser()._actions}
    assert "toy" in actions["to"].choices and "toy" in actions["src_framework"].choices
    assert actions["toyfile"].option_strings == ["--toyfile"]
