"""Code + checkpoint PyTorch sources in recipes: the schema's rules for the source's trees and
values, what each build stage reads (its cache key), where the code tree lands, and bad input
as one line naming the recipe file and field (a doit build of a one-recipe zoo each).

The recipes' real builds (every target verified against torch, the no-op rebuild, a kwarg or
a code file changed) run in tests/test_zoo_build.py, on its default-zoo build."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipelines.recipes import load as recipes
from tests.test_zoo_build import run_doit
from tests.zoo_env import offline_zoo_env

REPO = Path(__file__).resolve().parents[1]
RFB = REPO / "recipes" / "ultraface-rfb-320-pytorch.yaml"
SLIM = REPO / "recipes" / "ultraface-slim-320-pytorch.yaml"
TORCHSCRIPT = "  torchscript: {url: 'https://x.org/m.pt', sha256: '" + "a" * 64 + "', size: 1}\n"


def _errors(tmp_path: Path, old: str, new: str, count: int = 1) -> list[str]:
    text = RFB.read_text()
    assert text.count(old) >= count, old
    path = tmp_path / "m.yaml"
    path.write_text(text.replace(old, new, count))
    return [line.removeprefix(f"{path}#") for line in recipes.validate_recipe_file(path)]


ENTRY = "  entry: vision.ssd.mb_tiny_RFB_fd:create_Mb_Tiny_RFB_fd\n"


@pytest.mark.parametrize(
    "old, new, want",
    [
        (ENTRY, "", ["/source: expected one of pt2, torchscript or entry (framework pytorch), "
                     "got {framework: 'pytorch', kwargs: {num_classes: 2, is_test: false}, "]),
        (ENTRY, TORCHSCRIPT + ENTRY, [
            "/source/entry: 'torchscript' and 'entry' exclude each other (framework pytorch "
            "takes one of pt2, torchscript or entry)",
            "/source/kwargs: 'kwargs' goes with 'entry', not with 'torchscript'",
            "/source/checkpoint: 'checkpoint' goes with 'entry', not with 'torchscript'",
            "/source/stub_modules: 'stub_modules' goes with 'entry', not with 'torchscript'",
            "/source/code: 'code' goes with 'entry', not with 'torchscript'"]),
        ("entry: vision.ssd.mb_tiny_RFB_fd:create_Mb_Tiny_RFB_fd", "entry: vision/ssd.py",
         ["/source/entry: expected 'package.module:callable', got 'vision/ssd.py'"]),
        ("kwargs: {num_classes: 2", "kwargs: {num-classes: 2",
         ["/source/kwargs/num-classes: expected a Python identifier, got 'num-classes'"]),
        ("kwargs: {num_classes: 2, is_test: false}", "kwargs: [2, false]",
         ["/source/kwargs: expected mapping of argument name to value, got [2, false]"]),
        ("path: vision/ssd/ssd.py", "path: vision/../ssd.py",
         ["/source/code/7/path: expected relative path of plain names (letters, digits, '_', "
          "'.', '-') joined by '/', no '.' or '..' part, got 'vision/../ssd.py'"]),
        ("path: vision/ssd/ssd.py", "path: /vision/ssd.py", [
            "/source/code/7/path: expected relative path of plain names (letters, digits, '_', "
            "'.', '-') joined by '/', no '.' or '..' part, got '/vision/ssd.py'"]),
        ("path: vision/ssd/ssd.py", "path: vision/utils/misc.py",
         ["/source/code/10/path: expected a path different from #/source/code/7/path, got "
          "'code/vision/utils/misc.py' again (both would be "
          "build/<id>/source/code/vision/utils/misc.py)"]),
        # A checkpoint whose URL ends in 'code' would be a file where the tree's directory is:
        # one line for the whole tree.
        ("models/pretrained/version-RFB-320.pth", "models/pretrained/code",
         ["/source/code/0/path: expected a place apart from #/source/checkpoint/url, got "
          "'code/vision/__init__.py': build/<id>/source/ cannot hold a file and a directory "
          "of one name"]),
        ("    - path: vision/__init__.py\n", "    - path: vision/__init__.py\n      mode: 1\n",
         ["/source/code/0/mode: unknown property 'mode' (expected one of path, url, sha256, "
          "size)"]),
        ("softmax: [scores]", "softmax: [scores, scores]",
         ["/source/softmax: expected unique items, got 'scores' more than once"]),
    ],
    ids=["no-model", "two-models", "entry-form", "kwarg-name", "kwargs-list", "dotdot",
         "absolute", "same-path", "file-vs-tree", "unknown-key", "softmax-twice"],
)  # fmt: skip
def test_source_rules_are_one_line_each(tmp_path, old, new, want):
    found = _errors(tmp_path, old, new)
    assert len(found) == len(want), found
    for line, expected in zip(found, want, strict=True):
        assert line.startswith(expected), (line, expected)


def test_checked_in_recipes_fetch_their_code_as_a_tree():
    from pipelines.build import layout
    from pipelines.recipes.cache import compute_meta

    recipe = recipes.load_recipe(RFB)
    files = layout.source_files("m", recipe)
    code = [r for r in files if r.startswith("source/code/")]
    assert len(code) == len(recipe["source"]["code"]) == 11
    src = layout.BUILD / "m" / "source"
    assert files["source/checkpoint"] == src / "version-RFB-320.pth"
    assert files["source/code/7"] == src / "code" / "vision" / "ssd" / "ssd.py"
    assert layout.tree_dirs("m", recipe) == {"code": src / "code"}
    # What the doit tasks depend on (from the recipe cache): the same paths.
    names = compute_meta(recipe)["files"]
    assert [str(src / n) for n in names.values()] == [str(p) for p in files.values()]


def test_a_tree_files_role_names_its_tree_and_a_malformed_one_is_one_line():
    from pipelines.errors import ZoomakeError
    from pipelines.recipes.checks import fetched_name, tree_of

    assert tree_of("source/code/3") == "code"
    assert fetched_name("source/code/3", {"url": "u", "path": "a/b.py"}) == "code/a/b.py"
    for role in ("source", "source/code", "source//3", "source/code/x", "verify/files/0",
                 "source/code/3/4"):  # fmt: skip
        with pytest.raises(ZoomakeError) as err:
            fetched_name(role, {"url": "u", "path": "a.py"})
        assert str(err.value) == (
            "expected a source tree file role 'source/<tree>/<N>' (as recipe_files names them), "
            f"got '{role}'"
        )


def test_a_stray_path_on_a_plain_file_is_the_schemas_line_not_a_tree(tmp_path):
    # The checks run on schema-invalid recipes too: a file that is not a tree's has no path
    # in recipe_files, so it is not taken for one (nor its role parsed as a tree's).
    old = "  checkpoint:\n"
    text = RFB.read_text()
    at = text.index(old)
    end = text.index("size:", at)
    end = text.index("\n", end) + 1
    path = tmp_path / "m.yaml"
    path.write_text(text[:end] + "    path: ckpt/version-RFB-320.pth\n" + text[end:])
    lines = [line.removeprefix(f"{path}#") for line in recipes.validate_recipe_file(path)]
    assert lines == ["/source/checkpoint/path: unknown property 'path' (expected one of url, "
                     "sha256, size)"]  # fmt: skip


def test_the_format_gets_the_tree_directory_and_the_values():
    from pipelines.recipes.stages import format_files

    recipe = recipes.load_recipe(RFB)
    src = Path("/b/m/source")
    fetched = {"checkpoint": src / "version-RFB-320.pth", "mean_file:input": src / "mean.bin",
               **{f"code/{r['path']}": src / "code" / r["path"]
                  for r in recipe["source"]["code"]}}  # fmt: skip
    got = format_files(recipe, fetched)
    assert got == {
        "checkpoint": src / "version-RFB-320.pth",
        "mean_file:input": src / "mean.bin",  # the recipe's other files stay
        "code": src / "code",
        "entry": "vision.ssd.mb_tiny_RFB_fd:create_Mb_Tiny_RFB_fd",
        "kwargs": {"num_classes": 2, "is_test": False},
        "softmax": ["scores"],
        "stub_modules": ["vision.ssd.predictor"],
    }
    # The PyTorch format reads it as the code + checkpoint form.
    from converters.pytorch.plugin import torch_source

    torch_src = torch_source(got)
    assert (torch_src.kind, torch_src.code_dir, torch_src.kwargs) == (
        "code", str(src / "code"), {"num_classes": 2, "is_test": False})  # fmt: skip


def _stages(recipe: dict) -> dict[str, str]:
    out = {s: recipes.stage_config(recipe, s) for s in ("fetch", "convert", "optimize",
                                                         "reference")}  # fmt: skip
    for target in recipe["targets"]:
        for stage in ("export", "verify"):
            out[f"{stage}:{target}"] = recipes.stage_config(recipe, stage, target)
    return out


def _changed(tmp_path: Path, edit) -> set[str]:
    a = recipes.load_recipe(RFB)
    data = yaml.safe_load(RFB.read_text())
    edit(data)
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    before, after = _stages(a), _stages(recipes.load_recipe(path))
    return {k for k in before if before[k] != after[k]}


def test_what_each_stage_of_a_code_source_reads(tmp_path):
    targets = yaml.safe_load(RFB.read_text())["targets"]
    verify = {f"verify:{t}" for t in targets}
    reads_model = {"convert", "reference"} | verify

    def kwarg(d):
        d["source"]["kwargs"]["device"] = "cpu"

    def softmax(d):
        d["source"]["softmax"] = []

    def code_file(d):
        d["source"]["code"][7].update(sha256="b" * 64, size=1)

    def code_path(d):
        d["source"]["code"][7]["path"] = "vision/ssd/ssd2.py"

    def dropped_file(d):
        del d["source"]["code"][0]

    def moved_url(d):
        d["source"]["code"][7]["url"] = "https://mirror.example/vision/ssd/ssd.py"

    assert _changed(tmp_path, kwarg) == reads_model
    assert _changed(tmp_path, softmax) == reads_model
    assert _changed(tmp_path, code_file) == {"fetch"} | reads_model
    assert _changed(tmp_path, code_path) == {"fetch"} | reads_model
    assert _changed(tmp_path, dropped_file) == {"fetch"} | reads_model
    assert _changed(tmp_path, moved_url) == {"fetch"}  # the same file, pinned by its sha256


# -- bad input, through doit ---------------------------------------------------------------------
def _wrong_code_sha(text: str) -> str:
    sha = "b0fc68ece891dd3bc66f0fae6bea8a14cb2abe1050b4267ecf0f21ff0afae4e4"  # mb_tiny_RFB.py
    assert text.count(sha) == 1
    return text.replace(sha, "ab" * 32)


def _other_checkpoint(text: str) -> str:
    def block(t):
        return re.search(r"  checkpoint:\n(    .*\n){3}", t).group(0)

    return text.replace(block(text), block(SLIM.read_text()))


BAD = {
    "code-sha256": (_wrong_code_sha, "fetch", "/source/code/2",
                    "mb_tiny_RFB.py in the mirror, sha256 b0fc68ece891dd3bc66f0fae6bea8a14cb2abe10"
                    "50b4267ecf0f21ff0afae4e4 (5248 bytes), the recipe says sha256 " + "ab" * 32),
    "entry": (lambda t: t.replace(":create_Mb_Tiny_RFB_fd", ":create_nothing"), "convert",
              "/source/entry", "entry 'vision.ssd.mb_tiny_RFB_fd:create_nothing': "
              "AttributeError: module 'vision.ssd.mb_tiny_RFB_fd' has no attribute "
              "'create_nothing'"),
    "kwarg": (lambda t: t.replace("is_test: false}", "is_test: false, width: 3}"), "convert",
              "/source/kwargs", "kwargs of vision.ssd.mb_tiny_RFB_fd:create_Mb_Tiny_RFB_fd: got "
              "an unexpected keyword argument 'width'"),
    "checkpoint": (_other_checkpoint, "convert", "/source/checkpoint",
                   "checkpoint version-slim-320.pth does not fit vision.ssd.mb_tiny_RFB_fd:"
                   "create_Mb_Tiny_RFB_fd: 72 keys missing (base_net.7.branch0.0.conv.weight, "),
}  # fmt: skip


@pytest.fixture(scope="module")
def bad_zoo_env(tmp_path_factory, models_dir):
    """One download cache for every bad recipe's build (the mirror's files, copied once)."""
    base = tmp_path_factory.mktemp("bad")
    return lambda name: (
        offline_zoo_env(base / name, base / name / "recipes", models_dir)
        | {"ZOOMAKE_CACHE": str(base / "cache")}
    )


@pytest.mark.parametrize("case", list(BAD))
def test_bad_code_source_is_one_line_naming_the_recipe_field(case, bad_zoo_env):
    edit, stage, pointer, message = BAD[case]
    env = bad_zoo_env(case)
    recipe = Path(env["ZOOMAKE_RECIPES"]) / "bad.yaml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(edit(RFB.read_text()))
    assert recipes.validate_recipe_file(recipe) == []  # valid: the model refuses it
    r = run_doit(env, check=False)
    assert r.returncode != 0
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stdout, r.stdout + r.stderr
    assert lines[0].startswith(f"{stage}:bad failed: {recipe}#{pointer}: "), lines[0]
    assert message in lines[0], lines[0]
    if case == "entry":  # the reference task says it against the recipe as well
        r = run_doit(env, "reference", check=False)
        assert r.returncode != 0
        assert r.stderr.splitlines() == [lines[0].replace("convert:", "reference:", 1)]


def test_fetched_tree_holds_exactly_the_recipes_files(tmp_path, monkeypatch):
    """fetch places each code file at its path; a task reading the sources re-hashes each one
    and removes what the recipe does not list (a file an earlier version of it listed, a
    __pycache__), so the model's code cannot import it."""
    import hashlib

    from pipelines.build import actions, layout
    from pipelines.errors import ZoomakeError

    monkeypatch.setattr(layout, "BUILD", tmp_path / "build")
    upstream = tmp_path / "upstream"
    code = []
    for path, text in [("pkg/__init__.py", ""), ("pkg/net.py", "def make():\n    return 1\n")]:
        f = upstream / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        sha = hashlib.sha256(f.read_bytes()).hexdigest()
        code.append({"path": path, "url": f.as_uri(), "sha256": sha, "size": f.stat().st_size})
    recipe = {"source": {"framework": "pytorch", "entry": "pkg.net:make", "code": code}}
    monkeypatch.setenv("ZOOMAKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOOMAKE_MIRROR", "")
    actions.act_fetch("m", recipe)
    tree = tmp_path / "build" / "m" / "source" / "code"
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()) == [
        "pkg/__init__.py",
        "pkg/net.py",
    ]
    (tree / "pkg" / "old.py").write_text("import torchvision\n")
    (tree / "pkg" / "__pycache__").mkdir()
    (tree / "pkg" / "__pycache__" / "old.cpython-311.pyc").write_bytes(b"x")
    roles = actions._roles("m", recipe)
    assert roles == {"code/pkg/__init__.py": tree / "pkg" / "__init__.py",
                     "code/pkg/net.py": tree / "pkg" / "net.py"}  # fmt: skip
    assert sorted(p.name for p in (tree / "pkg").iterdir()) == ["__init__.py", "net.py"]
    net = tree / "pkg" / "net.py"
    net.chmod(0o644)
    net.write_text("def make():\n    return 2\n")
    with pytest.raises(ZoomakeError, match=r"net\.py: sha256 .* the recipe says sha256 "):
        actions._roles("m", recipe)


def test_a_pytorch_targets_model_pth_is_verified_not_only_its_pt2(tmp_path, models_dir):
    """model.py + model.pth deploy as well as model.pt2: measure runs them on every sample
    against the reference (Runner.companions); a model.pth that is not model.pt2's weights (an
    exporter that wrote them apart) fails measure in one line, where it used to pass on
    model.pt2 alone. In a build, a model.pth edited after export is exported again."""
    import torch
    import yaml

    from pipelines.errors import ZoomakeError
    from pipelines.verify.measure import measure
    from tests.test_build_trust import make_zoo, ok, run_doit
    from tests.test_zoo_build import executed

    zoo = make_zoo(tmp_path, models_dir, {"mtcnn-det1": ["pytorch"]})
    ok(run_doit(zoo["env"], cwd=tmp_path))
    model_dir = zoo["build"] / "mtcnn-det1"
    pth = model_dir / "pytorch" / "model.pth"
    exported = pth.read_bytes()
    state = torch.load(pth, weights_only=True)
    first = next(k for k, v in state.items() if v.dtype == torch.float32 and v.dim() == 4)
    state[first] = state[first] * 1.5  # model.pt2 and model.pth no longer the same network
    torch.save(state, pth)
    recipe = yaml.safe_load((zoo["recipes"] / "mtcnn-det1.yaml").read_text())
    sources = {"prototxt": model_dir / "source" / "det1.prototxt",
               "caffemodel": model_dir / "source" / "det1.caffemodel"}  # fmt: skip
    with pytest.raises(ZoomakeError) as err:
        measure("mtcnn-det1", recipe, "pytorch", sources, pth.parent,
                reference_dir=model_dir / "reference")  # fmt: skip
    line = str(err.value)
    assert "\n" not in line
    assert "model.py + model.pth is not the model model.pt2 is: FAILED output " in line
    assert not (pth.parent / "verify.json").exists()  # no verdict recorded for the main file

    r = ok(run_doit(zoo["env"], cwd=tmp_path))  # the build exports it again, and verifies it
    assert {"export:mtcnn-det1:pytorch", "measure:mtcnn-det1:pytorch"} <= executed(r)
    assert pth.read_bytes() == exported
