"""The plugin contract of the registry, through fake installed distributions and in process.

A fake distribution is a `NAME-1.0.dist-info` folder (METADATA and entry_points.txt) beside its
module, in a folder put on PYTHONPATH: importlib.metadata finds it exactly as it finds a package
pip installed. The `thkit` command then runs in a subprocess, so each run discovers plugins afresh.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest

from thkit.core.errors import ThkitError
from thkit.core.registry import RUNTIME, Registry
from thkit.plugins.encoders.mel import MelEncoder
from thkit.plugins.fusion.concat import ConcatFusion

GOOD_ENCODER = """\
    from thkit.plugins.encoders.mel import MelEncoder

    class {name}(MelEncoder):
        \"\"\"A working third-party encoder (a renamed mel).\"\"\"
"""

MISFILED = """\
    from thkit.plugins.fusion.concat import ConcatFusion

    class Misfiled(ConcatFusion):
        \"\"\"A fusion, published in the encoders' group by mistake.\"\"\"

    def helper():
        \"\"\"Not a component at all.\"\"\"
"""

RUNTIME_HOOKS = """\
    from thkit.core import hookimpl
    from thkit.plugins.encoders.mel import MelEncoder

    class Made(MelEncoder):
        \"\"\"Registered by a hook plugin at run time.\"\"\"

    @hookimpl
    def register_components(register):
        register(Made, "made")
"""


def fake_distribution(site: Path, distribution: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]) -> None:
    info = site / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    sections = [f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in names.items()) for group, names in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(sections))
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two site folders of fake distributions; thkit-beta sits in the later one, so thkit-alpha is found first."""
    first, second = tmp_path_factory.mktemp("site-a"), tmp_path_factory.mktemp("site-b")
    fake_distribution(
        first, "thkit-broken", {"thkit.encoders": {"broken": "broken_plugin:Broken"}},
        {"broken_plugin": "raise ImportError('needs libfoo')\n"},
    )
    fake_distribution(
        first, "thkit-good", {"thkit.encoders": {"good": "good_plugin:Good"}},
        {"good_plugin": GOOD_ENCODER.format(name="Good")},
    )
    fake_distribution(
        first, "thkit-alpha", {"thkit.encoders": {"twin": "twin_alpha:Twin"}},
        {"twin_alpha": GOOD_ENCODER.format(name="Twin")},
    )
    fake_distribution(
        second, "thkit-beta", {"thkit.encoders": {"twin": "twin_beta:Twin"}},
        {"twin_beta": GOOD_ENCODER.format(name="Twin")},
    )
    fake_distribution(
        first, "thkit-misfiled", {"thkit.encoders": {"misfiled": "misfiled_plugin:Misfiled", "helper": "misfiled_plugin:helper"}},
        {"misfiled_plugin": MISFILED},
    )
    fake_distribution(
        first, "thkit-hooky", {"thkit": {"hooky": "hooky_plugin"}},
        {"hooky_plugin": "raise ImportError('hooky needs libbar')\n"},
    )
    fake_distribution(
        first, "thkit-runtime", {"thkit": {"runtime": "runtime_plugin"}},
        {"runtime_plugin": RUNTIME_HOOKS},
    )
    return [first, second]


def thkit(sites: list[Path], cwd: Path, *args: str, **switches: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("THKIT_PLUGINS", "THKIT_DISABLE_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, sites), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(COLUMNS="400", PYTHONIOENCODING="utf-8", **switches)  # wide enough that no table cell wraps
    result = subprocess.run([sys.executable, "-m", "thkit.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def table(stdout: str) -> list[list[str]]:
    """The body rows of a rich table, as lists of stripped cells."""
    return [[cell.strip() for cell in line.strip("│ ").split("│")] for line in stdout.splitlines() if line.startswith("│")]


def plugin_rows(stdout: str) -> dict[tuple[str, str], tuple[str, str, str]]:
    """`thkit plugins` as {(kind, name): (distribution, version, status)}."""
    return {(kind, name): (distribution, version, status) for kind, name, distribution, version, status in table(stdout)}


def spec(directory: Path, name: str, nodes: str) -> str:
    """Write a spec file and return its name (relative to `directory`, so messages are short)."""
    text = "thkit: 1\nname: plugins\ndata: {synthetic: {seconds: 2, size: 64}}\nnodes:\n" + textwrap.indent(textwrap.dedent(nodes), "  ")
    (directory / name).write_text(text)
    return name


def installed_encoders(stderr: str) -> set[str]:
    return set(re.search(r"installed encoders: (.*)", stderr)[1].split(", "))


@pytest.fixture(scope="module")
def listing(sites: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[str, str, str]]:
    """`thkit plugins` with every fake distribution installed (run once, shared by the tests that read it)."""
    result = thkit(sites, tmp_path_factory.mktemp("cwd"), "plugins")
    assert result.returncode == 0, result.stderr
    return plugin_rows(result.stdout)


# -- a plugin that fails to import ----------------------------------------------------------------


def test_a_plugin_that_fails_to_import_is_listed_as_failed(listing) -> None:
    assert listing["encoder", "broken"] == ("thkit-broken", "1.0", "failed: ImportError: needs libfoo")
    assert listing["encoder", "good"] == ("thkit-good", "1.0", "ok")
    assert listing["encoder", "mel"][2] == "ok"
    assert listing["fusion", "concat"][2] == "ok"


def test_the_rest_of_thkit_works_beside_broken_plugins(sites, tmp_path) -> None:
    name = spec(tmp_path, "mel.yaml", """\
        mel: {kind: encoder, type: mel, params: {n_mels: 40}, inputs: {audio: $audio}}
        good: {kind: encoder, type: good, params: {n_mels: 8}, inputs: {audio: $audio}}
        fuse: {kind: fusion, type: concat, inputs: {mel: mel.features, good: good.features}}
    """)
    result = thkit(sites, tmp_path, "build", name, "--check")  # with every broken fake installed
    assert result.returncode == 0, result.stderr
    assert table(result.stdout)[:3] == [
        ["mel", "encoder", "mel", "0", "features: Seq(40, 100)"],
        ["good", "encoder", "good", "0", "features: Seq(8, 100)"],
        ["fuse", "fusion", "concat", "0", "code: Seq(48, 25)"],
    ]
    assert "ok mel.yaml is valid and every module was constructed" in result.stdout


def test_a_spec_using_a_broken_plugin_names_the_plugin_and_its_distribution(sites, tmp_path) -> None:
    name = spec(tmp_path, "broken.yaml", "b: {kind: encoder, type: broken, inputs: {audio: $audio}}\n")
    result = thkit(sites, tmp_path, "build", name, "--check")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: 1 problem in spec",
        "broken.yaml:5:28: nodes.b.type: encoder 'broken' from 'thkit-broken' failed to load: ImportError: needs libfoo;"
        " reinstall or fix 'thkit-broken', or block it with THKIT_DISABLE_PLUGINS=broken",
    ]


# -- two distributions claiming one name ----------------------------------------------------------


def test_thkit_plugins_shows_a_name_claimed_by_two_distributions(listing) -> None:
    assert listing["encoder", "twin"] == ("thkit-alpha", "1.0", "conflict: also in thkit-beta")


def test_a_spec_using_a_contested_name_is_an_error_naming_both_distributions(sites, tmp_path) -> None:
    name = spec(tmp_path, "twin.yaml", "t: {kind: encoder, type: twin, inputs: {audio: $audio}}\n")
    result = thkit(sites, tmp_path, "graph", name)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: 1 problem in spec",
        "twin.yaml:5:28: nodes.t.type: encoder 'twin' is provided by both 'thkit-alpha' and 'thkit-beta';"
        " uninstall one of them, or block one with THKIT_DISABLE_PLUGINS=<distribution>",
    ]


def test_blocking_one_distribution_settles_a_contested_name(sites, tmp_path) -> None:
    result = thkit(sites, tmp_path, "plugins", THKIT_DISABLE_PLUGINS="thkit-beta")
    assert plugin_rows(result.stdout)["encoder", "twin"] == ("thkit-alpha", "1.0", "ok")
    name = spec(tmp_path, "twin.yaml", "t: {kind: encoder, type: twin, inputs: {audio: $audio}}\n")
    graph = thkit(sites, tmp_path, "graph", name, THKIT_DISABLE_PLUGINS="thkit-beta")
    assert graph.returncode == 0, graph.stderr
    assert 'n_t["t<br/>encoder: twin"]' in graph.stdout


# -- a class that breaks the contract -------------------------------------------------------------


def test_a_class_registered_under_the_wrong_kind_is_reported(listing, sites, tmp_path) -> None:
    message = "Misfiled.kind is 'fusion', but it is registered as an encoder"
    assert listing["encoder", "misfiled"] == ("thkit-misfiled", "1.0", f"failed: {message}")
    name = spec(tmp_path, "misfiled.yaml", "m: {kind: encoder, type: misfiled, inputs: {audio: $audio}}\n")
    result = thkit(sites, tmp_path, "graph", name)
    assert result.returncode == 2
    assert result.stderr.splitlines()[1] == (
        f"misfiled.yaml:5:28: nodes.m.type: encoder 'misfiled' from 'thkit-misfiled' failed to load: {message};"
        " reinstall or fix 'thkit-misfiled', or block it with THKIT_DISABLE_PLUGINS=misfiled"
    )


def test_an_entry_point_that_is_not_a_component_class_is_reported(listing) -> None:
    distribution, version, status = listing["encoder", "helper"]
    assert (distribution, version) == ("thkit-misfiled", "1.0")
    assert status == "failed: misfiled_plugin:helper is not a thkit Component class"


# -- the THKIT_PLUGINS / THKIT_DISABLE_PLUGINS switches -------------------------------------------


@pytest.mark.parametrize("blocked", ["broken", "thkit-broken", "Thkit_Broken"], ids=["by-name", "by-distribution", "normalised"])
def test_disable_plugins_blocks_a_component(sites, tmp_path, blocked: str) -> None:
    rows = plugin_rows(thkit(sites, tmp_path, "plugins", THKIT_DISABLE_PLUGINS=blocked).stdout)
    assert ("encoder", "broken") not in rows
    assert rows["encoder", "good"] == ("thkit-good", "1.0", "ok")
    name = spec(tmp_path, "broken.yaml", "b: {kind: encoder, type: broken, inputs: {audio: $audio}}\n")
    result = thkit(sites, tmp_path, "graph", name, THKIT_DISABLE_PLUGINS=blocked)
    assert result.returncode == 2
    assert result.stderr.splitlines()[1].startswith("broken.yaml:5:28: nodes.b.type: unknown encoder type 'broken'; installed encoders: ")
    encoders = installed_encoders(result.stderr)
    # Only usable names are offered: the contested 'twin' and the failing 'misfiled' are not.
    assert {"mel", "good"} <= encoders and not {"broken", "twin", "misfiled"} & encoders


def test_disable_plugins_can_block_a_built_in(sites, tmp_path) -> None:
    name = spec(tmp_path, "mel.yaml", "m: {kind: encoder, type: mel, inputs: {audio: $audio}}\n")
    result = thkit(sites, tmp_path, "graph", name, THKIT_DISABLE_PLUGINS="mel")
    assert result.returncode == 2
    assert "mel.yaml:5:28: nodes.m.type: unknown encoder type 'mel'; installed encoders: " in result.stderr
    assert "mel" not in installed_encoders(result.stderr)


def test_thkit_plugins_switch_allows_only_the_named_components(sites, tmp_path) -> None:
    only = {"THKIT_PLUGINS": "mel,concat"}
    thkit_version = version("thkit")
    rows = plugin_rows(thkit(sites, tmp_path, "plugins", **only).stdout)
    assert rows == {("encoder", "mel"): ("thkit", thkit_version, "ok"), ("fusion", "concat"): ("thkit", thkit_version, "ok")}
    allowed = spec(tmp_path, "allowed.yaml", """\
        m: {kind: encoder, type: mel, inputs: {audio: $audio}}
        f: {kind: fusion, type: concat, inputs: {m: m.features}}
    """)
    assert thkit(sites, tmp_path, "graph", allowed, **only).returncode == 0
    other = spec(tmp_path, "other.yaml", "g: {kind: encoder, type: good, inputs: {audio: $audio}}\n")
    result = thkit(sites, tmp_path, "graph", other, **only)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: 1 problem in spec",
        "other.yaml:5:28: nodes.g.type: unknown encoder type 'good'; installed encoders: mel",
    ]


# -- hook plugins (entry-point group `thkit`) -----------------------------------------------------


def test_a_hook_plugin_that_fails_to_import_is_reported_and_skipped(listing, sites, tmp_path) -> None:
    assert listing["hooks", "hooky"] == ("thkit-hooky", "", "failed: ImportError: hooky needs libbar")
    # The other hook plugin still loads and registers its component.
    assert listing["hooks", "runtime"] == ("thkit-runtime", "", "ok")
    assert listing["encoder", "made"] == (RUNTIME, "", "ok")
    name = spec(tmp_path, "made.yaml", "m: {kind: encoder, type: made, params: {n_mels: 4}, inputs: {audio: $audio}}\n")
    result = thkit(sites, tmp_path, "graph", name)
    assert result.returncode == 0, result.stderr
    assert 'n_m["m<br/>encoder: made"]' in result.stdout


# -- the Registry object, in process --------------------------------------------------------------


@pytest.fixture
def components(monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.delenv("THKIT_PLUGINS", raising=False)
    monkeypatch.delenv("THKIT_DISABLE_PLUGINS", raising=False)
    registry = Registry()
    registry.register(MelEncoder, "mel")
    registry.register(ConcatFusion, "concat")
    return registry


def message_of(components: Registry, kind: str, name: str) -> str:
    with pytest.raises(ThkitError) as caught:
        components.get(kind, name)  # type: ignore[arg-type]
    return caught.value.message


def test_an_unknown_name_suggests_the_closest_one(components) -> None:
    assert message_of(components, "encoder", "mle") == "unknown encoder type 'mle' (did you mean 'mel'?); installed encoders: mel"
    assert message_of(components, "encoder", "hubert") == "unknown encoder type 'hubert'; installed encoders: mel"
    assert message_of(components, "renderer", "nerf") == "unknown renderer type 'nerf'; installed renderers: (none)"


def test_a_name_of_another_kind_says_which_kind_it_is(components) -> None:
    assert message_of(components, "encoder", "concat") == "'concat' is a fusion, not an encoder; installed encoders: mel"
    assert message_of(components, "fusion", "mel") == "'mel' is an encoder, not a fusion; installed fusions: concat"


def test_a_run_time_component_loads_on_first_use(components) -> None:
    entry = components.entry("encoder", "mel")
    assert (entry.distribution, entry.version, entry.target) == (RUNTIME, "", "thkit.plugins.encoders.mel:MelEncoder")
    assert entry.status == "not loaded"
    assert components.get("encoder", "mel") is MelEncoder
    assert entry.status == "ok"
    assert components.names("encoder") == ["mel"] and components.kinds_of("concat") == ["fusion"]


def test_two_distributions_registering_one_name_conflict(components) -> None:
    components.register(MelEncoder, "mel", distribution="thkit-other")
    assert components.entry("encoder", "mel").status == "conflict: also in thkit-other"
    with pytest.raises(ThkitError) as caught:
        components.get("encoder", "mel")
    assert caught.value.message == f"encoder 'mel' is provided by both '{RUNTIME}' and 'thkit-other'"
    assert caught.value.hint == "uninstall one of them, or block one with THKIT_DISABLE_PLUGINS=<distribution>"


def test_register_refuses_a_class_without_a_kind(components) -> None:
    class Kindless:
        pass

    with pytest.raises(ThkitError) as caught:
        components.register(Kindless, "kindless")  # type: ignore[arg-type]
    assert caught.value.message == f"cannot register {Kindless!r}: its `kind` must be one of encoder, fusion, conditioning, renderer"


def test_register_obeys_the_switches(components, monkeypatch) -> None:
    monkeypatch.setenv("THKIT_DISABLE_PLUGINS", "blocked-name")
    components.register(MelEncoder, "blocked-name")
    assert components.entry("encoder", "blocked-name") is None
    monkeypatch.setenv("THKIT_PLUGINS", "mel")
    components.register(MelEncoder, "other")
    assert components.names("encoder") == ["mel"]
