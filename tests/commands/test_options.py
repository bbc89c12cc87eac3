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
