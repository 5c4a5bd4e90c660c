// MicroPython's WebAssembly port (the npm package pinned in examples/web/package.json)
// as a command line, like the unix port's `micropython`, for the device tests in Node.
//
//   node tools/mpwasm.mjs [-X heapsize=16M] [--mount DIR]... [--stdin] (SCRIPT | -c CODE) [ARG]...
//
// The port has no host filesystem: the folders on MICROPYPATH (':'-separated, as for the
// unix port; relative to the current directory), the script's folder and every --mount DIR
// are copied into its in-memory filesystem (Emscripten's FS, `mp.FS`) at the same absolute
// paths, and the current directory is the host's. `--stdin` feeds this process's stdin to
// sys.stdin (read to the end first). Prints what MicroPython prints; exits with the code of
// SystemExit (1 for an uncaught exception, printed as MicroPython prints it). Node runs it
// as a 32-bit wasm32 machine: no native emitter (viper and native raise SyntaxError).
// heapsize is the port's first heap: its GC adds more heap when that is full (split heap),
// so it is not a RAM limit as on a board or the unix port.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PACKAGE = path.join(
  HERE,
  "..",
  "examples",
  "web",
  "node_modules",
  "@micropython",
  "micropython-webassembly-pyscript",
  "micropython.mjs",
);

function usage(message) {
  process.stderr.write(`mpwasm: ${message}\n`);
  process.exit(2);
}

function parseSize(text) {
  const m = /^(\d+)([KkMm]?)$/.exec(text);
  if (!m) usage(`heapsize ${text}: expected a number with an optional K or M suffix`);
  const scale = { "": 1, k: 1024, m: 1024 * 1024 }[m[2].toLowerCase()];
  return Number(m[1]) * scale;
}

function parseArgs(argv) {
  const opts = { heap: 16 * 1024 * 1024, mounts: [], stdin: false, code: null, script: null, args: [] };
  let i = 0;
  while (i < argv.length) {
    const a = argv[i];
    if (a === "-X") {
      const [key, value] = (argv[i + 1] || "").split("=");
      if (key !== "heapsize") usage(`-X ${argv[i + 1]}: only heapsize=SIZE is supported`);
      opts.heap = parseSize(value);
      i += 2;
    } else if (a === "--mount") {
      opts.mounts.push(argv[i + 1]);
      i += 2;
    } else if (a === "--stdin") {
      opts.stdin = true;
      i += 1;
    } else if (a === "-c") {
      opts.code = argv[i + 1];
      opts.args = argv.slice(i + 2);
      return opts;
    } else if (a.startsWith("-")) {
      usage(`unknown option ${a}; allowed: -X heapsize=SIZE, --mount DIR, --stdin, -c CODE`);
    } else {
      opts.script = a;
      opts.args = argv.slice(i + 1);
      return opts;
    }
  }
  usage("give a script or -c CODE");
}

// Copy a host folder (or file) into the in-memory filesystem at the same absolute path.
function mirror(FS, hostPath) {
  const abs = path.resolve(hostPath);
  const stat = fs.statSync(abs, { throwIfNoEntry: false });
  if (!stat) return;
  if (stat.isDirectory()) {
    FS.mkdirTree(abs);
    for (const name of fs.readdirSync(abs)) {
      if (name === "node_modules" || name === "__pycache__" || name.startsWith(".")) continue;
      mirror(FS, path.join(abs, name));
    }
  } else if (stat.isFile()) {
    FS.mkdirTree(path.dirname(abs));
    FS.writeFile(abs, fs.readFileSync(abs));
  }
}

function stdinReader(opts) {
  if (!opts.stdin) return () => null;
  const data = fs.readFileSync(0);
  let pos = 0;
  return () => (pos < data.length ? data[pos++] : null);
}

const opts = parseArgs(process.argv.slice(2));
const { loadMicroPython } = await import(pathToFileURL(PACKAGE).href).catch((err) => {
  usage(`${PACKAGE}: ${err.message} (run \`npm ci\` in examples/web)`);
});
const write = (stream) => (line) => stream.write(line + "\n");
const mp = await loadMicroPython({
  heapsize: opts.heap,
  stdin: stdinReader(opts),
  stdout: write(process.stdout),
  stderr: write(process.stderr),
});

const cwd = process.cwd();
const micropypath = (process.env.MICROPYPATH || "").split(":").filter((p) => p);
mp.FS.mkdirTree(cwd);
mp.FS.mkdirTree("/tmp");
for (const dir of micropypath) mirror(mp.FS, dir);
for (const dir of opts.mounts) mirror(mp.FS, dir);
let source = opts.code;
let filename = "<string>";
let scriptDir = "";
if (opts.script !== null) {
  const abs = path.resolve(opts.script);
  mirror(mp.FS, path.dirname(abs));
  source = fs.readFileSync(abs, "utf8");
  filename = opts.script;
  scriptDir = path.dirname(opts.script);
}

// sys.path as the unix port makes it: the script's folder, then MICROPYPATH, then the
// port's own entries (".frozen", "/lib").
mp.globals.set("_mpwasm", {
  cwd,
  path: [scriptDir, ...micropypath],
  argv: [opts.script === null ? "" : opts.script, ...opts.args],
  source,
  filename,
});
mp.runPython(`
import os, sys
def _mpwasm_main(spec):
    os.chdir(spec.cwd)
    sys.path[:0] = [p for p in spec.path]
    sys.argv[:] = [a for a in spec.argv]
    try:
        code = compile(spec.source, spec.filename, "exec")
        exec(code, {"__name__": "__main__", "__file__": spec.filename})
    except SystemExit as exc:
        value = exc.args[0] if exc.args else 0
        if value is None:
            return 0
        if isinstance(value, int):
            return value
        print(value)
        return 1
    except BaseException as exc:
        sys.print_exception(exc)
        return 1
    return 0
_mpwasm_code = _mpwasm_main(_mpwasm)
`);
// a last line without its newline is still in the loader's line buffers
for (const [buffer, stream] of [
  ["_stdoutBuffer", process.stdout],
  ["_stderrBuffer", process.stderr],
]) {
  const pending = mp._module[buffer];
  if (pending && pending.length) stream.write(Buffer.from(pending));
}
const code = mp.globals.get("_mpwasm_code");
process.exitCode = typeof code === "number" ? code & 255 : 1;
