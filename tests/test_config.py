import dataclasses

import pytest

from fossil.config import (
    PRESETS,
    FossilConfig,
    GenerationConfig,
    OpenCutConfig,
    RetrievalConfig,
    ScoringConfig,
    TextConfig,
    apply_preset,
    get_preset,
)


def test_paper_defaults():
    config = FossilConfig()
    assert (config.retrieval.N, config.retrieval.K, config.scoring.gamma) == (150, 10, 0.5)
    assert (config.opencut.t, config.opencut.eta, config.opencut.mu, config.opencut.rho) == (
        3,
        16,
        0.8,
        0.7,
    )
    # what builds references: the model profile's and ingest's configs, not FossilConfig's
    assert GenerationConfig().heatmap_threshold == 0.45
    assert TextConfig().template_weight == 0.9
    assert TextConfig().caption_weight == pytest.approx(0.1)
    # OpenCut: the paper's variant, quantile taus measured on real photos (design §5.7) ...
    assert (config.opencut.variant, config.opencut.tau_space) == ("paper", "quantile")
    assert config.opencut.taus == (0.5, 0.6, 0.7, 0.8, 0.9)
    # ... and the paper's absolute schedule one call away
    paper = OpenCutConfig.paper_absolute(t=2)
    assert paper.tau_space == "absolute" and paper.t == 2
    assert paper.taus == (0.15, 0.2, 0.25, 0.6, 0.8, 0.0, -0.1)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FossilConfig().retrieval.N = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RetrievalConfig(N=10, K=25), r"K \(25\) must be <= N \(10\)"),
        (lambda: RetrievalConfig(N=0, K=1), r"N \(0\) must be >= 1"),
        (lambda: ScoringConfig(gamma=1.5), r"gamma \(1.5\) must be in \[0, 1\]"),
        (lambda: OpenCutConfig(mu=-0.1), r"mu"),
        (lambda: OpenCutConfig(tau_foreground=(), tau_background=()), "tau schedule"),
        (lambda: GenerationConfig(mask_mode="otsu"), "raw-sigmoid-minmax"),  # type: ignore[arg-type]
    ],
)
def test_validation_names_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_presets_table3():
    assert {k: (p.N, p.K, p.gamma) for k, p in PRESETS.items()} == {
        "context": (70, 10, 0.7),
        "cocostuff": (95, 25, 0.5),
        "ade": (150, 10, 0.5),
        "cityscapes": (95, 30, 0.55),
    }
    config = apply_preset(FossilConfig(), "cityscapes")
    assert (config.retrieval.N, config.retrieval.K, config.scoring.gamma) == (95, 30, 0.55)
    with pytest.raises(ValueError, match="valid presets: context, cocostuff, ade, cityscapes"):
        get_preset("voc")


def test_quantile_taus_must_be_fractions():
    with pytest.raises(ValueError, match=r"quantile taus must be fractions in \[0, 1\]"):
        OpenCutConfig(tau_background=(0.6, 0.8, 0.0, -0.1))
    assert OpenCutConfig(tau_space="absolute", tau_background=(-0.1,)).taus[-1] == -0.1
