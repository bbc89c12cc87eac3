"""The segmentation flags shared by segment, eval, query and serve reach the OpenCut config."""

from __future__ import annotations

import argparse

import pytest

from fossil.commands._options import add_segmentation_options, build_config


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_segmentation_options(parser)
    return parser.parse_args(list(argv))


def test_defaults_are_the_paper_variant_with_quantile_taus():
    opencut = build_config(_args(), None).opencut
    assert (opencut.variant, opencut.tau_space, opencut.crf.enabled) == ("paper", "quantile", True)
    assert opencut.subdivide_depth == 0  # the paper does not subdivide


def test_crf_workers_flag_defaults_to_one_per_core():
    assert build_config(_args(), None).opencut.crf.workers == 0  # the library's default is 1
    assert build_config(_args("--crf-workers", "1"), None).opencut.crf.workers == 1
    with pytest.raises(ValueError, match="workers"):
        build_config(_args("--crf-workers", "-2"), None)


def test_subdivide_flag():
    assert build_config(_args("--opencut-subdivide", "2"), None).opencut.subdivide_depth == 2
    with pytest.raises(ValueError, match="subdivide_depth"):
        build_config(_args("--opencut-subdivide", "-1"), None)


def test_variant_and_paper_taus_flags():
    opencut = build_config(
        _args("--opencut-variant", "shrinking-graph", "--paper-taus", "--no-crf"), "ade"
    ).opencut
    assert opencut.variant == "shrinking-graph" and opencut.tau_space == "absolute"
    assert opencut.taus == (0.15, 0.2, 0.25, 0.6, 0.8, 0.0, -0.1)
    assert not opencut.crf.enabled


def test_unknown_variant_is_refused(capsys):
    with pytest.raises(SystemExit):
        _args("--opencut-variant", "recursive")
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "regions", "opencut"),
    [
        ((), "opencut", {}),
        (("--regions", "subdivide-2"), "subdivide-2", {"subdivide_depth": 2}),
        (("--regions", "opencut-nocrf"), "opencut-nocrf", {"crf": False}),
        (("--regions", "shrinking-graph"), "shrinking-graph", {"variant": "shrinking-graph"}),
        (("--regions", "superpixels"), "superpixels", None),
        (("--regions", "patches"), "patches", None),
        (("--no-opencut",), "patches", None),
    ],
)
def test_regions_names_the_proposer(argv, regions, opencut):
    config = build_config(_args(*argv), None)
    assert config.regions == regions
    run = config.region_opencut
    if opencut is None:
        assert run is None
        return
    assert run is not None
    assert run.subdivide_depth == opencut.get("subdivide_depth", 0)
    assert run.crf.enabled == opencut.get("crf", True)
    assert run.variant == opencut.get("variant", "paper")


@pytest.mark.parametrize(
    ("flags", "name"),
    [
        (("--no-crf",), "opencut-nocrf"),
        (("--opencut-subdivide", "1"), "subdivide-1"),
        (("--opencut-variant", "shrinking-graph"), "shrinking-graph"),
    ],
)
def test_the_older_flags_run_what_their_names_run(flags, name):
    old = build_config(_args(*flags), None).region_opencut
    new = build_config(_args("--regions", name), None).region_opencut
    assert old is not None and new is not None
    assert old == new


def test_contradicting_region_flags_are_refused():
    with pytest.raises(ValueError, match="--no-opencut is --regions patches"):
        build_config(_args("--no-opencut", "--regions", "superpixels"), None)
    # an OpenCut flag beside another proposer changes only what the OpenCut names would run
    assert build_config(_args("--no-opencut", "--no-crf"), None).region_opencut is None
    with pytest.raises(SystemExit):
        _args("--regions", "slic")
