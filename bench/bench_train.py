"""Time a training step in PyTorch and in resnet.c, side by side.

A step is forward, cross-entropy, backward and an SGD update (momentum 0.9,
weight decay 5e-4) on a fixed batch of random images. For every case the two
engines take turns for --rounds rounds, each run in a child process of its
own. The table reports each engine's fastest run: its images/s and the peak
resident memory of its process.

  /usr/bin/python3 bench/bench_train.py [--cases resnet20:128:3x32x32:A,...]

Needs Debian's python3-torch and a built ./build/resnet (`make`).
"""

import argparse
import collections
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_CASES = ",".join([
    "resnet20:128:3x32x32:A",
    "resnet20:128:3x32x32:B",
    "resnet56:128:3x32x32:A",
    "d2l-resnet18:256:1x96x96",
    "resnet20:128:1x28x28:A",  # Fashion-MNIST's image shape
    "resnet18:32:3x224x224",   # torchvision's ResNet-18 on ImageNet-sized images
    # BF16 products: resnet.c's --precision bf16 against PyTorch's CPU autocast
    "resnet20:128:3x32x32:A:bf16",
    "d2l-resnet18:256:1x96x96:bf16",
])
TORCHVISION_RESNETS = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}
CLASSES = 10  # passed to `resnet bench --classes` too


# --------------------------------------------------------------------- cases

class Case:
    """One benchmark configuration: model, batch size, input shape, shortcut
    and precision (fp32, or bf16 for BF16 matrix products in both engines)."""

    def __init__(self, spec):
        fields = spec.split(":")
        self.precision = "fp32"
        if len(fields) > 3 and fields[-1].lower() in ("fp32", "bf16"):
            self.precision = fields.pop().lower()
        if len(fields) not in (3, 4):
            raise ValueError(f"invalid case '{spec}': expected "
                             "MODEL:BATCH:CxHxW[:SHORTCUT][:PRECISION], such as "
                             "resnet20:128:3x32x32:A or resnet20:128:3x32x32:A:bf16")
        self.model = fields[0]
        try:
            self.batch = int(fields[1])
            self.c, self.h, self.w = (int(d) for d in fields[2].lower().split("x"))
        except ValueError:
            raise ValueError(f"invalid case '{spec}': batch must be an integer and the "
                             "input CxHxW, such as 128 and 3x32x32") from None
        if self.batch < 1 or min(self.c, self.h, self.w) < 1:
            raise ValueError(f"invalid case '{spec}': batch and input sizes must be positive")
        # Only the CIFAR resnetN models have shortcut options, A by default;
        # torchvision's resnet18 ... resnet152 have their own.
        if self.model.startswith("resnet") and self.model not in TORCHVISION_RESNETS:
            self.shortcut = fields[3].upper() if len(fields) == 4 else "A"
            if self.shortcut not in ("A", "B", "C"):
                raise ValueError(f"invalid shortcut '{fields[3]}' in case '{spec}': "
                                 "expected A, B or C")
        else:
            self.shortcut = None

    @property
    def input(self):
        return f"{self.c}x{self.h}x{self.w}"

    @property
    def spec(self):
        parts = [self.model, str(self.batch), self.input]
        parts += [self.shortcut] if self.shortcut else []
        return ":".join(parts + [self.precision])

    @property
    def label(self):
        label = f"{self.model} b{self.batch} {self.input}"
        label = f"{label} {self.shortcut}" if self.shortcut else label
        return f"{label} bf16" if self.precision == "bf16" else label


# ------------------------------------------------------------ PyTorch worker

def read_status_mib(field):
    """Return a memory field of /proc/self/status, such as VmRSS, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def torch_worker(case, steps, warmup, threads):
    """Run one timed PyTorch training loop and print its result as JSON.

    Runs in a child process of its own, so its peak memory is its own case's.
    """
    import torch

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import torch_models

    import_rss_mib = read_status_mib("VmRSS")
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = torch_models.build(case.model, case.c, CLASSES, case.shortcut or "A")
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    images = torch.randn(case.batch, case.c, case.h, case.w)
    labels = torch.randint(0, CLASSES, (case.batch,))

    # BF16 cases run the forward pass under CPU autocast, which gives the
    # convolutions and the linear layer BF16 inputs. The weights stay FP32.
    autocast = torch.autocast(device_type="cpu", dtype=torch.bfloat16,
                              enabled=case.precision == "bf16")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start

    print(json.dumps({
        "model": case.model,
        "batch": case.batch,
        "input": case.input,
        "precision": case.precision,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "images_per_sec": steps * case.batch / seconds,
        "step_ms": 1000 * seconds / steps,
        "peak_rss_mib": read_status_mib("VmHWM"),
        "import_rss_mib": import_rss_mib,
    }))


# ---------------------------------------------------------- child processes

# One engine's run: throughput, peak RSS of its process and, for PyTorch
# only, the RSS right after `import torch` (None for resnet.c).
Run = collections.namedtuple("Run", "images_per_sec peak_rss_mib import_rss_mib")


class ChildResult:
    def __init__(self, returncode, stdout, stderr, peak_rss_mib):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.peak_rss_mib = peak_rss_mib


def run_child(command, timeout):
    """Run `command` and return its exit status, output and peak RSS.

    The peak RSS is ru_maxrss of this one child, read with os.wait4, so both
    engines are measured the same way and no other case can raise it. A
    child still running after `timeout` seconds is killed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            process.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, wait_status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(wait_status)

        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        if timed_out.is_set():
            stderr += f"\ntimed out after {timeout:.0f} s and was killed; raise --timeout"
        # Linux reports ru_maxrss in KiB.
        return ChildResult(process.returncode, out.read().decode(errors="replace"),
                           stderr, usage.ru_maxrss / 1024)


def parse_json_line(text):
    """Return the last line of `text` that parses as a JSON object, or None."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def check_report(report, case, threads):
    """Return a message naming the first field of `report` that differs from
    what `case` and `threads` request, or None if all present fields match."""
    expected = {"model": case.model, "batch": case.batch, "input": case.input,
                "threads": threads, "precision": case.precision}
    if case.shortcut:
        expected["shortcut"] = case.shortcut
    for key, value in expected.items():
        if key in report and report[key] != value:
            return f"its JSON reports {key} {report[key]!r}, expected {value!r}"
    return None


def run_engine(command, timeout, case, threads):
    """Run one engine's child; return (Run, None) or (None, error message)."""
    try:
        result = run_child(command, timeout)
    except OSError as error:
        return None, f"{shlex.join(command)}\n  failed to start: {error}; build it with `make` " \
            "or pass --resnet PATH"
    report = parse_json_line(result.stdout) if result.returncode == 0 else None
    if report is None or "images_per_sec" not in report:
        if result.returncode == 0:
            reason = "printed no JSON line with images_per_sec"
        else:
            reason = f"exited with status {result.returncode}"
        message = (f"{shlex.join(command)}\n  {reason}; its stderr:\n"
                   + (result.stderr.strip() or "(empty)"))
        return None, message
    mismatch = check_report(report, case, threads)
    if mismatch:
        return None, f"{shlex.join(command)}\n  {mismatch}"
    return Run(float(report["images_per_sec"]), result.peak_rss_mib,
               report.get("import_rss_mib")), None


def torch_command(case, args):
    return [sys.executable, os.path.abspath(__file__), "--torch-worker", case.spec,
            "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--threads", str(args.threads)]


def resnet_command(case, args):
    command = [args.resnet, "bench", "--model", case.model, "-b", str(case.batch),
               "--input", case.input, "--steps", str(args.steps),
               "--classes", str(CLASSES), "--warmup", str(args.warmup),
               "--threads", str(args.threads), "--format", "json"]
    if case.shortcut:
        command += ["--shortcut", case.shortcut]
    if case.precision == "bf16":
        command += ["--precision", "bf16"]
    return command


# ------------------------------------------------------------------- report

def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def torch_version():
    result = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                            capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "not importable"


def format_table(rows, markdown):
    header = ["case", "PyTorch img/s", "resnet.c img/s", "ratio",
              "PyTorch peak MiB", "resnet.c peak MiB"]
    cells = [header]
    for case, torch_best, resnet_best in rows:
        torch_ips = f"{torch_best.images_per_sec:.1f}" if torch_best else "failed"
        resnet_ips = f"{resnet_best.images_per_sec:.1f}" if resnet_best else "failed"
        ratio = "-"
        if torch_best and resnet_best:
            ratio = f"{resnet_best.images_per_sec / torch_best.images_per_sec:.2f}"
        torch_mib = f"{torch_best.peak_rss_mib:.0f}" if torch_best else "-"
        resnet_mib = f"{resnet_best.peak_rss_mib:.0f}" if resnet_best else "-"
        cells.append([case.label, torch_ips, resnet_ips, ratio, torch_mib, resnet_mib])

    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in cells]
        lines.insert(1, "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        left = row[0].ljust(widths[0])
        lines.append("  ".join([left] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]))
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def best_run(runs):
    """Return the run with the highest images/s, or None if all failed."""
    ok = [run for run in runs if run is not None]
    return max(ok, key=lambda run: run.images_per_sec) if ok else None


# Runs of one engine whose slowest is below this fraction of its fastest are
# flagged as noisy below the table.
SPREAD_WARNING = 0.8


def print_spread_notes(spreads):
    """Print a note for each case and engine whose runs disagree widely."""
    notes = []
    for case, engine, runs in spreads:
        speeds = [run.images_per_sec for run in runs if run is not None]
        if len(speeds) > 1 and min(speeds) < SPREAD_WARNING * max(speeds):
            notes.append(f"note: {case.label}: {engine} runs ranged from {min(speeds):.1f} "
                         f"to {max(speeds):.1f} img/s. Another process may have competed "
                         "for the cores: rerun on an idle machine or with more --rounds.")
    if notes:
        print("\n" + "\n".join(notes))


# --------------------------------------------------------------------- main

def parse_args(argv):
    cores = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(
        description="Compare training-step throughput and peak memory of PyTorch "
                    "(eager, CPU) and resnet.c on the same cases.")
    parser.add_argument("--cases", default=DEFAULT_CASES,
                        help="comma-separated MODEL:BATCH:CxHxW[:SHORTCUT][:PRECISION], "
                             "PRECISION fp32 or bf16 (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=10,
                        help="timed training steps per run (default 10)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps before timing (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each engine per case, alternating; the best "
                             "is reported (default 3)")
    parser.add_argument("--threads", type=int, default=cores,
                        help=f"threads for both engines (default: all {cores} cores)")
    parser.add_argument("--resnet", default=os.path.join(ROOT, "build", "resnet"),
                        help="path of the resnet binary (default: build/resnet)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds before one run is killed (default 600)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as markdown, for docs/benchmarks.md")
    parser.add_argument("--torch-worker", metavar="CASE", help=argparse.SUPPRESS)
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


def main(argv):
    args = parse_args(argv)
    if args.torch_worker:
        torch_worker(Case(args.torch_worker), args.steps, args.warmup, args.threads)
        return 0

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; both engines use "
          f"{args.threads} threads")
    print(f"torch {torch_version()}, Python {platform.python_version()} ({sys.executable})")
    print("command: " + shlex.join([sys.executable] + sys.argv))
    print(f"each run: {args.warmup} warm-up + {args.steps} timed training steps (SGD, "
          f"momentum 0.9, weight decay 5e-4) on random data; best of {args.rounds} "
          "alternating rounds; peak MiB = max resident set of the run's process")
    print("load average at start: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    if not os.access(args.resnet, os.X_OK):
        print(f"warning: {args.resnet} is not an executable file; build it with `make` "
              "or pass --resnet PATH", file=sys.stderr)
    print(flush=True)

    rows, spreads = [], []
    for case in args.case_list:
        torch_runs, resnet_runs = [], []
        for round_index in range(args.rounds):
            engines = [("PyTorch", torch_command(case, args), torch_runs)]
            # A resnet.c failure (unknown flag, model or shape) repeats every
            # round, so its stderr is printed once and its later rounds skipped.
            if round_index == 0 or any(resnet_runs):
                engines.append(("resnet.c", resnet_command(case, args), resnet_runs))
            for name, command, runs in engines:
                run, error = run_engine(command, args.timeout, case, args.threads)
                runs.append(run)
                if error:
                    print(f"{case.label}: {name} run {round_index + 1} failed: {error}",
                          file=sys.stderr, flush=True)
                else:
                    print(f"{case.label}: {name} run {round_index + 1}/{args.rounds}: "
                          f"{run.images_per_sec:.1f} img/s, {run.peak_rss_mib:.0f} MiB",
                          file=sys.stderr, flush=True)
        rows.append((case, best_run(torch_runs), best_run(resnet_runs)))
        spreads += [(case, "PyTorch", torch_runs), (case, "resnet.c", resnet_runs)]

    print(format_table(rows, args.markdown))
    print_spread_notes(spreads)
    import_mib = [run.import_rss_mib for _, run, _ in rows if run and run.import_rss_mib]
    if import_mib:
        low, high = min(import_mib), max(import_mib)
        span = f"{low:.0f}" if round(low) == round(high) else f"{low:.0f} to {high:.0f}"
        print(f"\nPyTorch's peak includes {span} MiB resident after `import torch`, "
              "before the model is built.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
