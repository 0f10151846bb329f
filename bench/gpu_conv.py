"""GPU convolution benchmark (bench layer): our implicit-GEMM Triton kernels (forward, input
gradient, weight gradient, through the cuda device) against torch's cuDNN conv2d and the
convolution_backward its autograd uses, for the ResNet-style layer N=32, C=K=64, 16x16, 3x3, padding
1; IEEE fp32 against cudnn.allow_tf32=False, TF32 against TF32, each with the device's default
operand staging and with staging forced on (copies timed as part of ours). Eager times (with launch
overhead; best of two interleaved series after a GPU warm-up) and CUDA-graph times (kernel only),
then the weight gradient against its number of reduction slices. Writes $OUT/conv.json.
With --large, ResNet's conv2_x layer instead (56x56, 12x the work: GPU time, not launch overhead,
decides), default staging only, no slice sweep; writes $OUT/conv_large.json.
Usage: python bench/gpu_conv.py [--large] [--smoke]   (--smoke: tiny layer, CPU interpreter)
"""

import argparse

import torch

from bench.gpu_common import (
    Stopwatch,
    config_label,
    device_name,
    rel_err,
    save,
    sweep_marks,
    time_ms,
    warm_up_gpu,
)
from engine.backend import cuda_device

N, H, W, C, K, R, S, PAD = 32, 16, 16, 64, 64, 3, 3, 1
DEVICE = "cuda"


def _layer_sizes():
    """The layer's sizes as the device protocol takes them (stride 1, dilation 1, one group)."""
    return (N, H, W, C, K, R, S, H, W, 1, 1, PAD, PAD, 1, 1, 1)


def conv_passes(x, w, gy, out, gx, gw, sizes):
    """The cuda device's three passes of one convolution (`sizes` as its protocol takes them),
    each a no-argument call; also used by bench/gpu_overhead_probe.py."""
    return {"forward": lambda: cuda_device.conv2d_forward(x, w, out, *sizes),
            "input_grad": lambda: cuda_device.conv2d_backward_input(gy, w, gx, *sizes),
            "weight_grad": lambda: cuda_device.conv2d_backward_weight(x, gy, gw, *sizes)}


def _torch(x, w, gy, layout):
    # NHWC data viewed as NCHW: channels_last strides (cuDNN's NHWC path) or a contiguous copy.
    xt = x.view(N, H, W, C).permute(0, 3, 1, 2)
    wt = w.view(R, S, C, K).permute(3, 2, 0, 1)
    gyt = gy.view(N, H, W, K).permute(0, 3, 1, 2)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    xt, wt, gyt = (t.contiguous(memory_format=fmt) for t in (xt, wt, gyt))
    conv_backward = torch.ops.aten.convolution_backward

    def backward(mask):
        return conv_backward(gyt, xt, wt, None, [1, 1], [PAD, PAD], [1, 1], False, [0, 0], 1,
                             mask)

    return {"forward": lambda: torch.nn.functional.conv2d(xt, wt, padding=PAD),
            "input_grad": lambda: backward([True, False, False])[0],
            "weight_grad": lambda: backward([False, True, False])[1]}, (xt, wt, gyt)


# Each pass's result as torch returns it (NCHW, weights KCRS), turned to our NHWC / RSCK layout.
_TO_OURS = {"forward": (0, 2, 3, 1), "input_grad": (0, 2, 3, 1), "weight_grad": (2, 3, 1, 0)}


def _errors(ours_tensors, torch_fns, torch_inputs):
    """Relative max errors, ours and torch's in the same mode, against a float64 CPU reference
    computed by torch: ({pass: ours}, {pass: torch's})."""
    xt, wt, gyt = (t.double().cpu() for t in torch_inputs)
    xt.requires_grad_(True)
    wt.requires_grad_(True)
    y = torch.nn.functional.conv2d(xt, wt, padding=PAD)
    y.backward(gyt)
    refs = {"forward": y.detach(), "input_grad": xt.grad, "weight_grad": wt.grad}
    ours, theirs = {}, {}
    for name, ref in refs.items():
        ref = ref.permute(*_TO_OURS[name])
        ours[name] = rel_err(ours_tensors[name].cpu().view(ref.shape), ref)
        theirs[name] = rel_err(torch_fns[name]().cpu().permute(*_TO_OURS[name]), ref)
    return ours, theirs


def _tuned_tile(kind, precision, fn):
    """Run `fn` (a launch of conv pass `kind`, kernels_triton.conv CONV_KINDS, autotuning it) and
    return the configuration it took in short: which candidates win, and so which to keep. None
    when it skipped the autotuner (below kernels_triton.conv.AUTOTUNE_MIN_WORK), not an earlier
    launch's."""
    from kernels_triton import conv as triton_conv

    autotuner = triton_conv._AUTOTUNED[(kind, precision)]
    autotuner.best_config = None
    fn()
    return config_label(autotuner.best_config)


_KINDS = {"forward": "forward", "input_grad": "input", "weight_grad": "weight"}


def _timed_splits(precision, staged):
    """(slices, stored) the device chose by timing for this layer (see
    engine/backend/cuda_weight_grad_splits.py), stored when an earlier process decided; (None,
    False) if it did not time one."""
    from engine.backend import cuda_weight_grad_splits

    for key, splits in cuda_weight_grad_splits.timed_splits().items():
        if key[:5] == (N, H, W, C, K) and key[-2:] == (precision, staged):
            return splits, key in cuda_weight_grad_splits.stored_splits()
    return None, False


def _splits_sweep(x, gy, gw, precision):
    """Weight-gradient time against the number of pixel-reduction slices, operands NHWC; for TF32
    also channel-major (staged) x and gy, and gy alone at the rule's slice count. Marked: the
    launcher's rule ("rule") and what the device chose by timing in the rows above ("chosen")."""
    from engine.backend import cuda_staging
    from kernels_triton import conv as triton_conv

    staged_x, _, _ = cuda_staging.relayout(cuda_device.alloc, x, 1, N * H * W, C, 0, (0, C, 1),
                                           cols_contiguous=False)
    staged_gy, _, _ = cuda_staging.relayout(cuda_device.alloc, gy, 1, N * H * W, K, 0,
                                            (0, K, 1), cols_contiguous=False)
    sizes = _layer_sizes()
    rule = triton_conv.weight_grad_splits(N, H, W, C, K, R, S, 1, cuda_device._sm_count())
    timed = {staged: _timed_splits(precision, staged) for staged in (False, True)}
    # Around the 264 program slots of an H100 (two per multiprocessor) over the 9 tap tiles; NHWC
    # operands as the device passes them at this size, and for TF32 also channel-major copies.
    counts = sorted({1, 4, 9, 14, 29, 58, rule} | {s for s, _ in timed.values() if s})
    cases = [(splits, (False, False)) for splits in counts]
    if precision != "ieee":
        cases += [(splits, (True, True)) for splits in counts] + [(rule, (False, True))]
    rows = []
    for splits, (x_major, gy_major) in cases:
        workspace = cuda_device.alloc(splits * R * S * C * K) if splits > 1 else None

        def fn(splits=splits, workspace=workspace, x_major=x_major, gy_major=gy_major):
            triton_conv.conv2d_backward_weight(
                staged_x if x_major else x, staged_gy if gy_major else gy, gw, *sizes,
                precision=precision, splits=splits, workspace=workspace,
                x_channel_major=x_major, gy_channel_major=gy_major)

        tile = _tuned_tile("weight", precision, fn)
        chosen = x_major == gy_major and splits == timed[x_major][0]
        row = {"precision": precision, "splits": splits, "tile": tile,
               "rule": splits == rule,
               "chosen": chosen, "stored": chosen and timed[x_major][1],
               "x_channel_major": x_major, "gy_channel_major": gy_major,
               "ms": time_ms(fn), "graph_ms": time_ms(fn, graph=True)}
        rows.append(row)
        graph = f"{row['graph_ms']:.4f}" if row["graph_ms"] else "n/a"
        print(f"weight_grad {precision:>5} splits={splits:<3} x/gy channel-major "
              f"{x_major:d}/{gy_major:d}: {row['ms']:.4f} ms, graph {graph} ms, {row['tile']}"
              f"{sweep_marks(row)}", flush=True)
    return rows


def _best(a, b):
    return b if a is None else min(a, b)


def main():
    global N, H, W, C, K, DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny layer, CPU interpreter")
    parser.add_argument("--large", action="store_true", help="the 56x56 layer, default staging")
    args = parser.parse_args()
    result_name = "conv_large" if args.large else "conv"
    if args.large:
        H = W = 56
    if args.smoke:
        N, H, W, C, K, DEVICE = 2, 5, 5, 4, 6, "cpu"
    modes = [("ieee", False, "auto"), ("tf32", True, "auto")]
    if not args.large:
        modes = [modes[0], ("ieee", False, "always"), modes[1], ("tf32", True, "always")]
    results = {"device": device_name(),
               "layer": dict(n=N, h=H, w=W, c=C, k=K, kernel=R, pad=PAD), "rows": []}
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.randn(N * H * W * C, device=DEVICE, generator=gen)
    w = torch.randn(R * S * C * K, device=DEVICE, generator=gen) * 0.05
    gy = torch.randn(N * H * W * K, device=DEVICE, generator=gen)
    out, gx, gw = (torch.empty_like(t) for t in (gy, x, w))
    flops = 2 * N * H * W * K * C * R * S
    print(f"{'pass':>12} {'mode':>5} {'staging':>7} {'ours GF/s':>10} {'cuDNN GF/s':>11} "
          f"{'ratio':>6} {'graph ratio':>11} {'rel err':>8} {'cuDNN err':>9}  autotuned tile")
    for precision, allow_tf32, staging in modes:
        torch.backends.cudnn.allow_tf32 = allow_tf32
        cuda_device.set_matmul_precision(precision)
        cuda_device.set_operand_staging(staging)
        ours = conv_passes(x, w, gy, out, gx, gw, _layer_sizes())
        clock = Stopwatch()
        tiles = {name: _tuned_tile(_KINDS[name], precision, fn) for name, fn in ours.items()}
        tune_s = clock.seconds()
        errors, torch_errors = _errors({"forward": out, "input_grad": gx, "weight_grad": gw},
                                       *_torch(x, w, gy, "nchw"))
        baselines = {layout: _torch(x, w, gy, layout)[0] for layout in ("channels_last", "nchw")}
        for name, fn in ours.items():
            warm_up_gpu()
            ours_ms = torch_ms = None
            for _ in range(2):  # interleaved series: neither side gets the cold start
                ours_ms = _best(ours_ms, time_ms(fn))
                torch_ms = {layout: _best((torch_ms or {}).get(layout), time_ms(fns[name]))
                            for layout, fns in baselines.items()}
            ours_graph = time_ms(fn, graph=True)
            best = min(torch_ms, key=torch_ms.get)
            torch_graph = time_ms(baselines[best][name], graph=True)
            row = {"pass": name, "precision": precision, "staging": staging, "ours_ms": ours_ms,
                   "ours_graph_ms": ours_graph, "torch_ms": torch_ms, "torch_layout": best,
                   "torch_graph_ms": torch_graph, "ours_gflops": flops / ours_ms / 1e6,
                   "torch_gflops": flops / torch_ms[best] / 1e6,
                   "ratio": torch_ms[best] / ours_ms,
                   "graph_ratio": (torch_graph / ours_graph) if ours_graph and torch_graph
                   else None, "rel_err": errors[name], "torch_rel_err": torch_errors[name],
                   "autotune_s": tune_s, "tile": tiles[name]}
            results["rows"].append(row)
            graph = f"{row['graph_ratio']:.2f}" if row["graph_ratio"] else "n/a"
            print(f"{name:>12} {precision:>5} {staging:>7} {row['ours_gflops']:>10.0f} "
                  f"{row['torch_gflops']:>11.0f} {row['ratio']:>6.2f} {graph:>11} "
                  f"{row['rel_err']:>8.1e} {row['torch_rel_err']:>9.1e}  {row['tile']}",
                  flush=True)
            save(result_name, results)
    if not args.large:
        results["weight_grad_splits"] = []
        for precision in ("ieee", "tf32"):
            cuda_device.set_matmul_precision(precision)
            results["weight_grad_splits"] += _splits_sweep(x, gy, gw, precision)
            save(result_name, results)
    cuda_device.set_matmul_precision("ieee")
    cuda_device.set_operand_staging("auto")
    torch.backends.cudnn.allow_tf32 = True


if __name__ == "__main__":
    main()
