"""Weigh BIRD's fairness term against the task loss on real batches (issue 13, part 2).

For a LeNet-5 student on a real data set (default: UTKFace crop_part1, age bucket, race protected, 32 px),
on ``--batches`` training batches of ``--batch-size``, with the student frozen at a few points of plain CE
training (Adam 1e-3; ``--snapshots`` in epochs, 0 = the initialisation), it reports for each variant of L_o
(:data:`CANDIDATES`, seeds/004 Eqn. 3 and the variants of :mod:`kdfair.losses.fairness`):

* the norm ratio ``||d(lambda L_o)/d(logits)|| / ||d((1 - alpha) CE)/d(logits)||`` (median and 10th / 90th
  percentiles over batches; the gradients are (B, C) tensors, Frobenius norm);
* the cosine between the two gradients (median; negative means the fairness term pulls against the task);
* the value of L_o (nats, median);

and, per sampler and batch size, the smallest (class, group) cell of each batch (median, and the share of
batches whose smallest present cell holds 1 or at most 2 samples). Only the logits matter here: the feature
term of Eqns. 2 and 4 does not reach them, so the classifier head sees exactly ``(1 - alpha) CE + lambda
L_o``.

Usage (about 2 minutes of one core)::

    nice -n 10 python scripts/bird_gradients.py --root /path/to/utkface --out /tmp/bird_gradients.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kdfair.data.registry import load_dataset
from kdfair.losses.fairness import FAIRNESS_TERMS, FairnessTerm, class_group_ce_gap
from kdfair.models.registry import build_model
from kdfair.train.augment import InputPipeline, channel_stats
from kdfair.train.sampling import balanced_batches, random_batches

CANDIDATES: dict[str, FairnessTerm] = {
    "paper (Eqn. 3)": FAIRNESS_TERMS["paper"],
    "min cell 3": FairnessTerm(min_cell_size=3),
    "min cell 5 (min_cell)": FAIRNESS_TERMS["min_cell"],
    "smooth max tau 0.1 (smooth_max)": FAIRNESS_TERMS["smooth_max"],
    "weighted mean (weighted_mean)": FAIRNESS_TERMS["weighted_mean"],
    "shrunk k=2": FairnessTerm(cell_prior=2.0),
    "shrunk k=4": FairnessTerm(cell_prior=4.0),
    "shrunk k=8": FairnessTerm(cell_prior=8.0),
    "shrunk k=16": FairnessTerm(cell_prior=16.0),
    "shrunk k=8, class mean (shrunk)": FAIRNESS_TERMS["shrunk"],
    "weighted mean, class mean": FairnessTerm(group_reduce="weighted_mean", class_reduce="mean"),
    "huber 0.1": FairnessTerm(gap_penalty="huber", huber_delta=0.1),
    "huber 0.2, shrunk k=8, class mean": FairnessTerm(
        gap_penalty="huber", huber_delta=0.2, cell_prior=8.0, class_reduce="mean"
    ),
    "huber 0.1, shrunk k=8, class mean (shrunk_huber)": FAIRNESS_TERMS["shrunk_huber"],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="/tmp/kdfair_data/utkface", help="data set folder")
    parser.add_argument("--dataset", default="utkface")
    parser.add_argument("--attribute", default="race")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=300, help="batches per snapshot and sampler")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--alpha", type=float, default=0.9, help="feature-KD weight: CE has 1 - alpha")
    parser.add_argument(
        "--fairness-weight", type=float, default=0.2, help="lambda (the ratio scales with it)"
    )
    parser.add_argument("--snapshots", default="0,1,5", help="epochs of CE training at which to measure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    return parser.parse_args()


def logit_gradients(
    logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, num_groups: int, term: FairnessTerm
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(dCE/dlogits, dL_o/dlogits, L_o)`` for one batch; both gradients (B, C), unweighted."""
    leaf = logits.detach().double().requires_grad_(True)
    (ce_grad,) = torch.autograd.grad(F.cross_entropy(leaf, labels), [leaf])
    fairness = class_group_ce_gap(leaf, labels, groups, num_groups, term)
    (fair_grad,) = torch.autograd.grad(fairness, [leaf])
    return ce_grad, fair_grad, float(fairness.detach())


def smallest_cells(
    labels: np.ndarray, groups: np.ndarray, batches: list[np.ndarray], num_groups: int
) -> np.ndarray:
    """The smallest present (class, group) cell of each batch (samples)."""
    out = []
    for batch in batches:
        counts = np.bincount(labels[batch] * num_groups + groups[batch])
        out.append(counts[counts > 0].min())
    return np.asarray(out)


def train_ce(
    model: torch.nn.Module, pipeline: InputPipeline, labels: torch.Tensor, epochs: int, seed: int
) -> None:
    """``epochs`` more epochs of plain CE, Adam lr 1e-3, batch 128, random order (seeded by epoch)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        for batch in random_batches(len(labels), 128, seed=seed, epoch=1000 + epoch):
            optimizer.zero_grad()
            F.cross_entropy(model(pipeline.batch(batch)), labels[batch]).backward()
            optimizer.step()


def measure(args: argparse.Namespace, model, pipeline, labels, groups, num_groups, batches) -> list[str]:
    """Markdown rows ``| variant | ratio median [p10, p90] | cosine median | L_o median |``."""
    weight_ce, weight_fair = 1.0 - args.alpha, args.fairness_weight
    with torch.no_grad():
        logits = [model(pipeline.batch(b)).double() for b in batches]
    rows = []
    for name, term in CANDIDATES.items():
        ratios, cosines, values = [], [], []
        for batch, z in zip(batches, logits, strict=True):
            ce_grad, fair_grad, value = logit_gradients(z, labels[batch], groups[batch], num_groups, term)
            ratios.append(weight_fair * fair_grad.norm() / (weight_ce * ce_grad.norm()))
            cosines.append(F.cosine_similarity(ce_grad.flatten(), fair_grad.flatten(), dim=0))
            values.append(value)
        r = torch.stack(ratios).numpy()
        rows.append(
            f"| {name} | {np.median(r):.2f} [{np.percentile(r, 10):.2f}, {np.percentile(r, 90):.2f}] | "
            f"{float(torch.stack(cosines).median()):+.2f} | {np.median(values):.3f} |"
        )
    return rows


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    options = {"image_size": args.image_size, "in_memory": True}
    dataset = load_dataset(args.dataset, args.root, options, seed=0)
    train = dataset.split("train")
    mean, std = channel_stats(train)
    pipeline = InputPipeline(train, modality="image", augment=False, mean=mean, std=std)
    labels_np, groups_np = train.labels.astype(np.int64), train.attributes[args.attribute].astype(np.int64)
    num_groups = int(groups_np.max()) + 1
    labels, groups = torch.from_numpy(labels_np), torch.from_numpy(groups_np)
    samplers = {
        "random": lambda epoch: random_batches(len(labels_np), args.batch_size, seed=args.seed, epoch=epoch),
        "balanced": lambda epoch: balanced_batches(
            labels_np, groups_np, args.batch_size, seed=args.seed, epoch=epoch
        ),
    }
    lines = [
        f"# BIRD's fairness term vs CE on {args.dataset} ({args.attribute}), LeNet-5, lambda "
        f"{args.fairness_weight}, CE weight {1 - args.alpha:.2g}, batch {args.batch_size}",
        "",
    ]
    lines += cell_table(args, labels_np, groups_np, num_groups, samplers)
    torch.manual_seed(args.seed)
    model = build_model("lenet5", dataset.num_classes, image_size=args.image_size)
    trained = 0
    for snapshot in sorted(int(s) for s in args.snapshots.split(",")):
        train_ce(model, pipeline, labels, snapshot - trained, args.seed)
        trained = snapshot
        for sampler, make in samplers.items():
            batches = take(make, args.batches)
            lines += ["", f"## student after {snapshot} epochs of CE, {sampler} batches ({len(batches)})", ""]
            lines += [
                "| L_o variant | norm ratio, median [p10, p90] | cosine | L_o (nats) |",
                "|---|---|---|---|",
            ]
            lines += measure(args, model, pipeline, labels, groups, num_groups, batches)
    lines += ["", f"({time.time() - start:.0f} s)"]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


def take(make, count: int) -> list[np.ndarray]:
    """``count`` full batches from successive epochs of a sampler (a short last batch is skipped)."""
    batches, epoch = [], 0
    size = None
    while len(batches) < count:
        epoch_batches = make(epoch)
        size = size or len(epoch_batches[0])
        batches += [b for b in epoch_batches if len(b) == size]
        epoch += 1
    return batches[:count]


def cell_table(args, labels, groups, num_groups, samplers) -> list[str]:
    """Smallest-cell statistics per sampler and batch size (meta batches of 1, 4 and 8 x ``batch_size``)."""
    lines = [
        "| sampler | batch | smallest cell, median | share of batches with smallest cell 1 | <= 2 |",
        "|---|---|---|---|---|",
    ]
    for sampler, make in samplers.items():
        base = take(make, args.batches * 8)
        for multiple in (1, 4, 8):
            batches = [np.concatenate(base[i : i + multiple]) for i in range(0, len(base), multiple)]
            cells = smallest_cells(labels, groups, batches[: args.batches], num_groups)
            lines.append(
                f"| {sampler} | {args.batch_size * multiple} | {np.median(cells):g} | "
                f"{np.mean(cells == 1):.2f} | {np.mean(cells <= 2):.2f} |"
            )
    return lines


if __name__ == "__main__":
    main()
