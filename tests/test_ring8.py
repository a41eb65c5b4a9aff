"""Issue 3's bar for the engine: an MLP GAN on the ring of 8 Gaussians (radius 2, std 0.02), trained
on the CPU with the default experiment, covers at least 7 of the 8 modes with at least 70% of its
samples within 3 standard deviations of a mode."""
import json

import pytest

from jaxgan import cli


@pytest.mark.slow
@pytest.mark.optimized
def test_ring8_covers_the_modes_with_high_quality_samples(tmp_path):
    wd = tmp_path / "ring8"
    assert cli.main(["train", "ring8", "--workdir", str(wd), "--set", "sample_every_steps=0",
                     "--set", "checkpoint_every_steps=0"]) == 0
    ev = json.loads((wd / "eval.json").read_text())
    print("ring8 eval:", ev)
    assert ev["modes10k/num_modes"] == 8
    assert ev["modes10k/covered"] >= 7
    assert ev["modes10k/high_quality_fraction"] >= 0.70
