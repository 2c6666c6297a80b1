"""Time inference in resnet.c, PyTorch and ONNX Runtime, side by side.

Each engine runs evaluation-mode forward passes on a fixed batch of random
images, with the same thread count:

- resnet.c: `resnet bench --mode inference`;
- PyTorch: its fastest CPU mode, a TorchScript model frozen with
  torch.jit.freeze, under torch.no_grad();
- ONNX Runtime: the npm package onnxruntime-node running the same model
  exported by torch.onnx.export, with all graph optimizations.

The PyTorch models come from tools/torch_models.py: torchvision's for the
ImageNet names, this project's twins for the others.

The engines take turns for --rounds rounds, each run in a child process of
its own. The table reports each engine's fastest run and peak resident
memory, and resnet.c's GFLOP/s with its share of the FP32 peak that
`resnet bench` measures.

  /usr/bin/python3 bench/bench_infer.py [--cases resnet18:1:3x224x224,...]

Needs Debian's python3-torch and python3-torchvision, a built ./build/resnet
(`make`), and for the ONNX Runtime column `npm install --ignore-scripts` in
bench/. The flag matters because the package's install script downloads
GPU libraries, while the CPU library ships in the package itself.
"""

import argparse
import json
import os
import shlex
import shutil
import sys
import time

from bench_train import ROOT, cpu_model, parse_json_line, run_child, torch_version

DEFAULT_CASES = "resnet18:1:3x224x224,resnet18:32:3x224x224,resnet50:1:3x224x224," \
                "resnet50:32:3x224x224"
CLASSES = 1000
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ORT_WORKER = os.path.join(BENCH_DIR, "ort_worker.js")
ORT_PACKAGE = os.path.join(BENCH_DIR, "node_modules", "onnxruntime-node")


class Case:
    """One configuration: model, batch size, input shape."""

    def __init__(self, spec):
        fields = spec.split(":")
        try:
            if len(fields) != 3:
                raise ValueError
            self.model = fields[0]
            self.batch = int(fields[1])
            self.c, self.h, self.w = (int(d) for d in fields[2].lower().split("x"))
        except ValueError:
            raise ValueError(f"invalid case '{spec}': expected MODEL:BATCH:CxHxW, such as "
                             "resnet18:1:3x224x224") from None
        if self.batch < 1 or min(self.c, self.h, self.w) < 1:
            raise ValueError(f"invalid case '{spec}': batch and input sizes must be positive")

    @property
    def input(self):
        return f"{self.c}x{self.h}x{self.w}"

    @property
    def spec(self):
        return f"{self.model}:{self.batch}:{self.input}"

    @property
    def label(self):
        return f"{self.model} b{self.batch} {self.input}"


def build_torch_model(case):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import torch_models
    return torch_models.build(case.model, case.c, CLASSES, None).eval()


def torch_worker(case, steps, warmup, threads):
    """Time a frozen TorchScript model and print the result as JSON."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    images = torch.randn(case.batch, case.c, case.h, case.w)
    with torch.no_grad():
        model = build_torch_model(case)
        try:
            scripted = torch.jit.script(model)
        except RuntimeError:
            # Scripting fails on modules whose forward branches on optional
            # submodules (the pre-activation blocks); a trace records the
            # one path this input takes.
            scripted = torch.jit.trace(model, images)
        model = torch.jit.freeze(scripted)
        for _ in range(warmup):
            model(images)
        start = time.perf_counter()
        for _ in range(steps):
            model(images)
        seconds = time.perf_counter() - start
    print(json.dumps({"images_per_sec": steps * case.batch / seconds,
                      "threads": torch.get_num_threads()}))


def export_worker(case, path):
    """Write the case's model as ONNX with a dynamic batch size."""
    import torch
    model = build_torch_model(case)
    example = torch.randn(1, case.c, case.h, case.w)
    torch.onnx.export(model, example, path + ".tmp", input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
                      opset_version=13)
    os.replace(path + ".tmp", path)


def export_onnx(case, directory, timeout):
    """Return the path of the case's ONNX model, exported once per model and
    input shape. The export runs in a child process: a parent that had
    imported torch would pass its memory on to every child it forks, whose
    peak resident memory then starts from the parent's."""
    path = os.path.join(directory, f"{case.model}-{case.input}.onnx")
    if os.path.exists(path):
        return path
    command = [sys.executable, os.path.abspath(__file__), "--export-worker", case.spec, path]
    result = run_child(command, timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited with status {result.returncode}: "
                           + (result.stderr.strip() or "(no stderr)"))
    return path


def engine_run(command, timeout):
    """Run one child; return ((its JSON report, peak MiB), None) or (None, error message)."""
    try:
        result = run_child(command, timeout)
    except OSError as error:
        return None, f"{shlex.join(command)}\n  failed to start: {error}"
    report = parse_json_line(result.stdout) if result.returncode == 0 else None
    if report is None or "images_per_sec" not in report:
        reason = (f"exited with status {result.returncode}" if result.returncode
                  else "printed no JSON line with images_per_sec")
        return None, (f"{shlex.join(command)}\n  {reason}; its stderr:\n"
                      + (result.stderr.strip() or "(empty)"))
    return (report, result.peak_rss_mib), None


def parse_args(argv):
    cores = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(
        description="Compare inference throughput and peak memory of resnet.c, PyTorch "
                    "(frozen TorchScript) and ONNX Runtime on the same cases.")
    parser.add_argument("--cases", default=DEFAULT_CASES,
                        help="comma-separated MODEL:BATCH:CxHxW (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=10,
                        help="timed forward passes per run (default 10)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed passes before timing (default 3)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each engine per case, alternating; the best is "
                             "reported (default 3)")
    parser.add_argument("--threads", type=int, default=cores,
                        help=f"threads for every engine (default: all {cores} cores)")
    parser.add_argument("--resnet", default=os.path.join(ROOT, "build", "resnet"),
                        help="path of the resnet binary (default: build/resnet)")
    parser.add_argument("--onnx-dir", default=os.path.join(ROOT, "build", "bench-onnx"),
                        help="where the exported ONNX models are kept (default: "
                             "build/bench-onnx)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds before one run is killed (default 600)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as markdown, for docs/benchmarks.md")
    parser.add_argument("--torch-worker", metavar="CASE", help=argparse.SUPPRESS)
    parser.add_argument("--export-worker", nargs=2, metavar=("CASE", "PATH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    for flag in ("steps", "rounds", "threads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    try:
        args.case_list = [Case(spec.strip()) for spec in args.cases.split(",") if spec.strip()]
    except ValueError as error:
        parser.error(str(error))
    if not args.case_list:
        parser.error("--cases lists no case")
    return args


def format_table(rows, markdown):
    header = ["case", "resnet.c img/s", "PyTorch img/s", "ORT img/s", "vs PyTorch", "vs ORT",
              "resnet.c GFLOP/s", "% of peak", "resnet.c MiB", "PyTorch MiB", "ORT MiB"]
    cells = [header]
    for case, best in rows:
        def ips(name):
            return f"{best[name][0]:.1f}" if best[name] else "-"

        def mib(name):
            return f"{best[name][1]:.0f}" if best[name] else "-"

        def ratio(name):
            if best["resnet.c"] and best[name]:
                return f"{best['resnet.c'][0] / best[name][0]:.2f}"
            return "-"

        gflops = peak = "-"
        if best["resnet.c"]:
            gflops = f"{best['resnet.c'][2]:.1f}"
            peak = f"{best['resnet.c'][3]:.0f}%"
        cells.append([case.label, ips("resnet.c"), ips("PyTorch"), ips("ORT"), ratio("PyTorch"),
                      ratio("ORT"), gflops, peak, mib("resnet.c"), mib("PyTorch"), mib("ORT")])
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in cells]
        lines.insert(1, "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join([row[0].ljust(widths[0])] +
                       [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]) for row in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv):
    args = parse_args(argv)
    if args.torch_worker:
        torch_worker(Case(args.torch_worker), args.steps, args.warmup, args.threads)
        return 0
    if args.export_worker:
        export_worker(Case(args.export_worker[0]), args.export_worker[1])
        return 0

    node = shutil.which("node")
    have_ort = node is not None and os.path.isdir(ORT_PACKAGE)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; every engine uses "
          f"{args.threads} threads")
    print(f"torch {torch_version()} (frozen TorchScript); ONNX Runtime: "
          + (json.load(open(os.path.join(ORT_PACKAGE, "package.json")))["version"]
             + " (onnxruntime-node)" if have_ort else "not installed"))
    print("command: " + shlex.join([sys.executable] + sys.argv))
    print(f"each run: {args.warmup} warm-up + {args.steps} timed forward passes on random "
          f"data; best of {args.rounds} alternating rounds")
    print("load average at start: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    if not have_ort:
        print("note: ONNX Runtime is skipped; install it with "
              "`(cd bench && npm install --ignore-scripts)`", file=sys.stderr)
    print(flush=True)
    os.makedirs(args.onnx_dir, exist_ok=True)

    rows = []
    for case in args.case_list:
        commands = {
            "resnet.c": [args.resnet, "bench", "--mode", "inference", "--model", case.model,
                         "-b", str(case.batch), "--input", case.input, "--classes",
                         str(CLASSES), "--steps", str(args.steps), "--warmup",
                         str(args.warmup), "--threads", str(args.threads), "--format", "json"],
            "PyTorch": [sys.executable, os.path.abspath(__file__), "--torch-worker", case.spec,
                        "--steps", str(args.steps), "--warmup", str(args.warmup),
                        "--threads", str(args.threads)],
        }
        if have_ort:
            try:
                onnx_path = export_onnx(case, args.onnx_dir, args.timeout)
                commands["ORT"] = [node, ORT_WORKER, onnx_path, str(case.batch), case.input,
                                   str(args.threads), str(args.steps), str(args.warmup)]
            except (OSError, RuntimeError) as error:
                print(f"{case.label}: ONNX export failed: {error}", file=sys.stderr)
        runs = {name: [] for name in ("resnet.c", "PyTorch", "ORT")}
        for round_index in range(args.rounds):
            for name, command in commands.items():
                result, error = engine_run(command, args.timeout)
                if error:
                    print(f"{case.label}: {name} run {round_index + 1} failed: {error}",
                          file=sys.stderr, flush=True)
                    runs[name].append(None)
                    continue
                report, peak_mib = result
                run = (float(report["images_per_sec"]), peak_mib,
                       report.get("gflops"), report.get("percent_of_peak"))
                runs[name].append(run)
                print(f"{case.label}: {name} run {round_index + 1}/{args.rounds}: "
                      f"{run[0]:.1f} img/s, {peak_mib:.0f} MiB", file=sys.stderr, flush=True)
        best = {}
        for name, engine_runs in runs.items():
            ok = [run for run in engine_runs if run is not None]
            best[name] = max(ok, key=lambda run: run[0]) if ok else None
        rows.append((case, best))

    print(format_table(rows, args.markdown))
    print("\nGFLOP/s counts 2 FLOPs per multiply-accumulate of the forward pass; % of peak "
          "divides it by the FP32 peak that `resnet bench` measured in the same run.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
