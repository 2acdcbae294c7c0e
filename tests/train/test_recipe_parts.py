"""Parts of the recipe: elastic warp, typeset and printed characters, degradations, junk, the ensemble."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from digits_data import dataset
from digits_train import strokes, typeset
from digits_train.augment import Jitter
from digits_train.config import FitConfig
from digits_train.data import OUTLIER, OutlierSubsetSampler, loaders
from digits_train.degrade import KINDS, Degrade, _partial, junk
from digits_train.model import DigitsClassifier, Ensemble
from digits_train.typeset import printed_digits

pytestmark = pytest.mark.slow  # torch and Lightning take seconds to import


def test_elastic_warp_moves_ink_smoothly_and_is_reproducible():
    images = torch.zeros(8, 1, 28, 28)
    images[:, :, 6:22, 12:16] = 1.0  # a bar
    still = Jitter(degrees=0, shift=0, scale=0, shear=0, stroke=0)
    warp = Jitter(degrees=0, shift=0, scale=0, shear=0, stroke=0, elastic=0.1)
    plain = still(images, torch.Generator().manual_seed(3))
    warped = warp(images, torch.Generator().manual_seed(3))
    assert torch.allclose(plain, images, atol=1e-6)  # identity maps leave the image as it is
    assert torch.equal(warped, warp(images, torch.Generator().manual_seed(3)))
    assert (warped - images).abs().amax(dim=(1, 2, 3)).min() > 0.3  # every image bent
    assert warped.min() >= 0
    assert warped.max() <= 1
    # A warp bends ink; it neither creates nor removes much of it.
    assert warped.sum(dim=(1, 2, 3)) == pytest.approx(images.sum(dim=(1, 2, 3)), rel=0.2)


def _classifier(**config) -> DigitsClassifier:
    model = DigitsClassifier([0, 5, 8], 0.1, 0.3, [1.0, 1.0, 1.0], "f", FitConfig(**config).to_dict(), "c")
    model.log = lambda *args, **kwargs: None  # no Trainer attached
    return model


def test_an_ensemble_outputs_the_mean_logits_and_trains_each_member_on_its_own_loss():
    model = _classifier(members=3, augment=False).eval()
    assert isinstance(model.network, Ensemble)
    assert len(model.network.members) == 3
    single = _classifier(members=1, augment=False)
    assert sum(p.numel() for p in model.parameters()) == 3 * sum(p.numel() for p in single.parameters())
    pixels = torch.rand(5, 1, 28, 28)
    targets = torch.tensor([0, 1, OUTLIER, 2, 0])
    with torch.no_grad():
        members = model.network.member_logits((pixels - model.mean) / model.std)
        assert members.shape == (3, 5, 4)  # 0, 5, 8 and the reject class
        mean = members.mean(0)
        assert torch.allclose(model(pixels), mean[:, :3] - mean[:, 3:], atol=1e-6)
        known = targets != OUTLIER
        expected = sum(float(model.loss(logits, targets, known)) for logits in members)
        assert float(model.training_step((pixels, targets), 0)) == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(expected)
    assert expected > 0


def test_a_reject_class_is_trained_on_the_outliers_and_leaves_the_digit_probabilities_alone():
    model = _classifier(members=1, augment=False, outlier_target="reject", outlier_weight=0.7).eval()
    assert model.network[-1].out_features == 4  # 0, 5, 8 and the reject class
    pixels = torch.rand(6, 1, 28, 28)
    targets = torch.tensor([0, 1, OUTLIER, 2, OUTLIER, 0])
    known = targets != OUTLIER
    with torch.no_grad():
        raw = model.network((pixels - model.mean) / model.std)
        logits = model(pixels)
        assert logits.shape == (6, 3)
        assert torch.allclose(logits, raw[:, :3] - raw[:, 3:], atol=1e-6)
        assert torch.allclose(logits.softmax(1), raw[:, :3].softmax(1), atol=1e-6)
        # energy = log of the digits' summed odds against the reject class
        odds = raw.softmax(1)[:, :3].sum(1) / raw.softmax(1)[:, 3]
        assert torch.allclose(torch.logsumexp(logits, 1), odds.log(), atol=1e-5)
        digits = F.cross_entropy(raw[known], targets[known])  # the classifier's weights are all 1
        outliers = F.cross_entropy(raw[~known], torch.full((2,), 3))
        expected = float(digits + 0.7 * outliers)
        assert float(model.loss(raw, targets, known)) == pytest.approx(expected, rel=1e-5)


def test_a_checkpoint_config_without_an_outlier_target_is_read_as_uniform():
    older = FitConfig().to_dict()
    del older["outlier_target"]
    model = DigitsClassifier([0, 5, 8], 0.1, 0.3, [1.0, 1.0, 1.0], "f", older, "c")
    assert model.config.outlier_target == "uniform"
    assert model.network.members[0][-1].out_features == 3
    assert _classifier().network.members[0][-1].out_features == 4  # today's default: reject


def test_typeset_characters_are_in_mnist_form_and_leave_out_those_written_like_0_5_8(monkeypatch):
    assert not set("OoSsB058") & set(typeset.CHARACTERS)
    assert len(typeset.CHARACTERS) == 7 + 47
    # One typeface, one handwriting font and one Hershey face: a short cycle.
    monkeypatch.setattr(typeset.typefaces, "TRAINING_FACES", ("DejaVuSerif-Italic.ttf",))
    handwriting = typeset.handwriting_fonts()[:1]
    monkeypatch.setattr(typeset, "handwriting_fonts", lambda: handwriting)
    monkeypatch.setattr(typeset.strokes, "FACES", ("scripts",))
    per_font = len(typeset.CHARACTERS) * len(typeset.PENS)
    variants = 4 * per_font  # Pillow's font, the typeface, the handwriting font, the pen strokes
    images = typeset.typeset(variants + 5)
    assert images.shape == (variants + 5, 28, 28)
    assert images.dtype == np.float32
    assert images.max(axis=(1, 2)).min() == pytest.approx(1.0)  # ink peak scaled to 1
    for image in images:  # the ink is scaled to fit 20x20, as MNIST's is
        rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert max(height, width) in (20, 21)  # 21: interpolation may spill into one more pixel
    distinct = {im.tobytes() for im in images[:variants]}
    assert len(distinct) >= variants - 4  # every character, pen and face its own image (l and I may coincide)
    fonts = [images[i * per_font : (i + 1) * per_font] for i in range(4)]
    assert not np.array_equal(fonts[0], fonts[1])  # the typeface draws other shapes
    assert not np.array_equal(fonts[1], fonts[2])  # and the handwriting font others again
    assert np.array_equal(fonts[3], typeset.strokes.characters("scripts", typeset.CHARACTERS))
    assert np.array_equal(images[-5:], images[:5])  # then the cycle starts again
    assert np.array_equal(typeset.typeset(7), images[:7])  # a prefix renders the same images
    assert typeset.typeset(0).shape == (0, 28, 28)


def test_pen_strokes_draw_each_character_with_a_wider_pen_each_time():
    text = "aCgnU"
    drawn = strokes.characters("futural", text)
    assert drawn.shape == (len(strokes.WIDTHS) * len(text), 28, 28)
    by_pen = drawn.reshape(len(strokes.WIDTHS), len(text), 28, 28)
    ink = by_pen.sum(axis=(2, 3))  # (pens, characters)
    assert (np.diff(ink, axis=0) > 0).all()  # every character, more ink with every wider pen
    assert len({image.tobytes() for image in drawn}) == len(drawn)
    assert np.array_equal(strokes.characters("futural", "C"), by_pen[:, 1])  # alone: the same bytes
    # The C is open on the right: its middle rows have ink on the left and none on the right.
    middle = by_pen[1, 1, 12:16]
    assert middle[:, :10].max() > 0.5
    assert middle[:, 18:].max() < 0.1


def test_characters_rendered_on_processes_are_the_bytes_of_one(monkeypatch):
    monkeypatch.setattr(typeset, "ONE_PROCESS_CHARACTERS", 10)  # spawn for a small count too
    count = 2 * len(typeset.CHARACTERS) * len(typeset.PENS) + 7  # two fonts whole, a third begun
    spread = typeset.typeset(count, workers=2)
    assert spread.shape == (count, 28, 28)
    assert spread.tobytes() == typeset.typeset(count, workers=1).tobytes()
    characters, (printed, targets) = typeset.render(count, 12, [0, 5, 8], 3, workers=2)
    alone, alone_targets = typeset.printed_digits(12, [0, 5, 8], 3)
    assert characters.tobytes() == spread.tobytes()
    assert (printed.tobytes(), targets.tolist()) == (alone.tobytes(), alone_targets.tolist())


def test_letters_of_fonts_training_never_sees_are_a_validation_set():
    trained = {path.name for path in typeset.handwriting_fonts()}
    held_out = {path.name for path in typeset.handwriting_fonts(validation=True)}
    assert held_out == set(typeset.VALIDATION_FONTS)
    assert not trained & held_out
    on_disk = {p.name for p in typeset.FONTS_DIR.iterdir() if p.suffix in (".otf", ".ttf")}
    assert trained | held_out == on_disk
    assert len(on_disk) == 16
    images = typeset.validation_characters()
    assert images.shape == (len(held_out) * len(typeset.PENS) * len(typeset.CHARACTERS), 28, 28)
    assert images.dtype == np.float32
    assert images.max(axis=(1, 2)).min() == pytest.approx(1.0)
    assert len({image.tobytes() for image in images}) >= len(images) - 8  # l and I may coincide


def test_typeset_characters_join_the_outliers(small_curated):
    train, _, _ = loaders(small_curated, [0, 5, 8], 64, 0, seed=1, outliers=True, typeset_count=30)
    plain, _, _ = loaders(small_curated, [0, 5, 8], 64, 0, seed=1, outliers=True)
    pixels, targets = train.dataset.tensors
    assert len(pixels) == len(plain.dataset) + 30
    assert int((targets == OUTLIER).sum()) == int((plain.dataset.tensors[1] == OUTLIER).sum()) + 30
    assert torch.equal(pixels[-30:, 0], torch.from_numpy(typeset.typeset(30)))


def test_each_epoch_takes_every_known_image_and_a_fresh_draw_of_outliers():
    sampler = OutlierSubsetSampler(
        known=10, outliers=30, per_epoch=12, generator=torch.Generator().manual_seed(5)
    )
    epochs = [list(sampler) for _ in range(3)]
    for order in epochs:
        assert len(order) == len(sampler) == 22
        assert sorted(i for i in order if i < 10) == list(range(10))  # every known image, once
        drawn = [i for i in order if i >= 10]
        assert len(set(drawn)) == 12  # outliers without repetition
        assert all(10 <= i < 40 for i in drawn)
    assert len({tuple(sorted(order)) for order in epochs}) == 3  # another draw each epoch
    again = OutlierSubsetSampler(10, 30, 12, torch.Generator().manual_seed(5))
    assert [list(again) for _ in range(3)] == epochs  # the seed decides the draws


def test_after_the_first_epoch_the_hardest_outliers_are_drawn_first():
    """With a scorer, half of each later draw is the top-scored outliers among twice the draw,
    the other half the rest of those in random order; the first epoch draws at random."""
    seen = []

    def scorer(positions: torch.Tensor) -> torch.Tensor:
        seen.append(positions.clone())
        return positions.float()  # the higher the position, the more it looks like a digit

    sampler = OutlierSubsetSampler(10, 100, 20, torch.Generator().manual_seed(3), hard=0.5)
    sampler.scorer = scorer
    plain = OutlierSubsetSampler(10, 100, 20, torch.Generator().manual_seed(3))
    assert list(sampler) == list(plain)  # the first epoch: no scores asked for
    assert seen == []
    for _ in range(3):
        drawn = {i for i in sampler if i >= 10}
        candidates = seen[-1]
        assert len(set(candidates.tolist())) == len(candidates) == 40
        assert all(10 <= i < 110 for i in candidates.tolist())
        top = set(candidates.sort(descending=True).values[:10].tolist())
        assert len(drawn) == 20
        assert top <= drawn <= set(candidates.tolist())
    assert len(seen) == 3
    random_only = OutlierSubsetSampler(10, 100, 20, torch.Generator().manual_seed(3), hard=0.0)
    random_only.scorer = scorer
    assert [len(list(random_only)) for _ in range(2)] == [30, 30]
    assert len(seen) == 3  # hard=0 never asks


def test_loaders_draw_outliers_per_epoch_only_when_asked(small_curated):
    known = len(dataset.load_split(small_curated, "train"))
    other = len(dataset.load_split(small_curated, "other_train"))
    subset, _, _ = loaders(small_curated, [0, 5, 8], 64, 0, seed=1, outliers=True, outliers_per_epoch=50)
    assert isinstance(subset.sampler, OutlierSubsetSampler)
    assert len(subset.sampler) == known + 50
    assert len(subset) == -(-(known + 50) // 64)  # batches an epoch, as the schedule counts them
    every, _, _ = loaders(small_curated, [0, 5, 8], 64, 0, seed=1, outliers=True, outliers_per_epoch=other)
    assert len(every.sampler) == known + other  # asking for all of them shuffles them all


def test_degradations_are_seeded_in_range_and_touch_the_share_asked_for():
    images = torch.zeros(400, 1, 28, 28)
    images[:, :, 6:22, 12:16] = 1.0  # a bar
    first = Degrade(0.5)(images, torch.Generator().manual_seed(4))
    again = Degrade(0.5)(images, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert first.min() >= 0.0
    assert first.max() <= 1.0
    changed = (first != images).flatten(1).any(1).float().mean().item()
    assert 0.4 < changed < 0.6
    assert torch.equal(Degrade(0.0)(images, torch.Generator().manual_seed(4)), images)
    for kind in KINDS:  # each kind keeps the shape and leaves something to read
        out = kind(images[:8], torch.Generator().manual_seed(1)).clamp(0, 1)
        assert out.shape == (8, 1, 28, 28)
        assert (out.flatten(1).amax(1) > 0.3).all()


def test_junk_is_no_digit_and_as_many_as_asked():
    known = torch.zeros(30, 1, 28, 28)
    known[:, :, 6:22, 12:16] = 1.0
    made = junk(known, torch.Generator().manual_seed(2))
    assert made.shape == known.shape
    assert torch.allclose(made.flatten(1).amax(1), torch.ones(30))  # peak scaled to 1, as preprocessed
    assert not any(torch.equal(m, k) for m, k in zip(made, known, strict=True))


def test_a_cut_leaves_a_third_to_two_thirds_of_a_digit_on_one_side_of_a_line():
    known = torch.zeros(200, 1, 28, 28)
    known[:, :, 4:24, 8:20] = 1.0  # a block centred as MNIST centres a digit
    part = _partial(known, torch.Generator().manual_seed(4))
    assert torch.equal(part, _partial(known, torch.Generator().manual_seed(4)))
    assert ((part == 0) | (part == known)).all()  # pixels are kept whole or taken away
    kept = part.sum(dim=(1, 2, 3)) / known.sum(dim=(1, 2, 3))
    assert kept.min() > 0.3
    assert kept.max() < 0.7
    # The part taken away lies on one side of a line: kept and removed pixels have no overlap in
    # their projection on the direction perpendicular to the cut, for the direction that best splits them.
    for image, whole in zip(part[:20, 0], known[:20, 0], strict=True):
        ys, xs = torch.nonzero(image, as_tuple=True)
        gone_ys, gone_xs = torch.nonzero(whole - image, as_tuple=True)
        angles = torch.linspace(0, 2 * math.pi, 721)
        on_kept = xs[None] * torch.cos(angles)[:, None] + ys[None] * torch.sin(angles)[:, None]
        on_gone = gone_xs[None] * torch.cos(angles)[:, None] + gone_ys[None] * torch.sin(angles)[:, None]
        assert (on_kept.amax(1) < on_gone.amin(1) + 1.0).any()


def test_printed_digits_come_in_every_training_face_and_class_equally():
    images, targets = printed_digits(60, [0, 5, 8], seed=1)
    assert images.shape == (60, 28, 28)
    assert images.dtype == np.float32
    assert np.bincount(targets).tolist() == [20, 20, 20]
    again, _ = printed_digits(60, [0, 5, 8], seed=1)
    np.testing.assert_array_equal(images, again)
    assert printed_digits(0, [0, 5, 8], seed=1)[0].shape == (0, 28, 28)
