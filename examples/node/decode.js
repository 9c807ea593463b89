// Greedy answers of an exported run (python export.py) from Node.js, with onnxruntime-node alone:
// it reads export.json, codec.json and the graphs, nothing from Python.
//   printf '(((\n[(\n' | node decode.js ../../models/<run>     # one answer per input line
// Problems are read in the task's own form (as in the data files); each answer is the model's text
// up to <eos>, as predict.py's "output". Exit code 2 if a line has a symbol the codec lacks.
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

const run = process.argv[2];
if (!run) { console.error("usage: node decode.js RUN_FOLDER < problems"); process.exit(2); }
const info = JSON.parse(fs.readFileSync(path.join(run, "export.json"), "utf8"));
const tokens = JSON.parse(fs.readFileSync(path.join(run, "codec.json"), "utf8")).tokens;
const { bos, sep, eos, mask } = info.specials;
const nSpecials = Object.keys(info.specials).length;
const ids = new Map(tokens.map((t, i) => [t, i]));
const symbols = tokens.slice(nSpecials).sort((a, b) => b.length - a.length);  // longest first, as codec.py matches

function encode(text) {
  const out = [];
  for (let i = 0; i < text.length;) {
    const s = symbols.find((s) => text.startsWith(s, i));
    if (!s) throw new Error(`${JSON.stringify(text)}: this model does not know ${JSON.stringify(text[i])}`);
    out.push(ids.get(s)); i += s.length;
  }
  return out;
}
const int64 = (xs, dims) => new ort.Tensor("int64", BigInt64Array.from(xs, BigInt), dims);
function argmax(a, from, n) { let best = 0; for (let j = 1; j < n; j++) if (a[from + j] > a[from + best]) best = j; return best; }
function surest(a, from, n) {  // the most likely token of one position and its probability
  const k = argmax(a, from, n); let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(a[from + j] - a[from + k]);
  return [k, 1 / sum];
}
const text = (answer) => { const end = answer.indexOf(eos); return (end < 0 ? answer : answer.slice(0, end)).filter((t) => t >= nSpecials).map((t) => tokens[t]).join(""); };

async function decodeWithState(model, step, prompt) {  // decoder and encdec: model.onnx once, then step.onnx with the state
  const feed = info.layout === "decoder" ? { tokens: int64(prompt, [1, prompt.length]) } : { src: int64(prompt, [1, prompt.length]), tokens: int64([bos], [1, 1]) };
  let out = await model.run(feed), answer = [];
  for (let t = 0; t < info.max_new_tokens; t++) {
    const logits = out.logits, V = logits.dims[2];
    const next = argmax(logits.data, (logits.dims[1] - 1) * V, V);
    answer.push(next);
    if (next === eos || t === info.max_new_tokens - 1) break;
    const past = Object.fromEntries(info.state.map((k) => [`past_${k}`, out[k]]));
    out = await step.run({ tokens: int64([next], [1, 1]), ...past });
  }
  return answer;
}

async function decodeSlots(model, prompt) {  // slots: every slot in one pass (refine: Mask-Predict, the surest open slot per pass)
  const n = info.n_slots, x = [...prompt, ...Array(n).fill(mask)], slotPos = Array.from({ length: n }, (_, j) => prompt.length + j);
  const answer = Array(n).fill(mask), prob = Array(n).fill(0), filled = Array(n).fill(false);
  for (let pass = 0; pass < (info.refine ? n : 1); pass++) {
    const { logits } = await model.run({ tokens: int64(x, [1, x.length]), slot_pos: int64(slotPos, [1, n]) });
    const V = logits.dims[2];
    for (let j = 0; j < n; j++) if (!filled[j]) [answer[j], prob[j]] = surest(logits.data, j * V, V);
    if (!info.refine) break;
    const open = prob.map((p, j) => (filled[j] ? -1 : p));
    filled[argmax(open, 0, n)] = true;
    slotPos.forEach((p, j) => { x[p] = filled[j] ? answer[j] : mask; });
    const firstEos = filled.findIndex((f, j) => f && answer[j] === eos);
    if (filled.every((f, j) => f || (firstEos >= 0 && j >= firstEos))) break;
  }
  return answer.slice(0, info.max_new_tokens);
}

async function main() {
  const opts = { executionProviders: ["cpu"], intraOpNumThreads: 1 };
  const [model, step] = await Promise.all(Object.keys(info.graphs).map((f) => ort.InferenceSession.create(path.join(run, f), opts)));
  let failed = false;
  for (const line of fs.readFileSync(0, "utf8").split("\n").filter((l) => l.length)) {
    let prompt;
    try { prompt = [bos, ...encode(line), sep]; } catch (e) { console.error(e.message); failed = true; continue; }
    const answer = info.layout === "slots" ? await decodeSlots(model, prompt) : await decodeWithState(model, step, prompt);
    console.log(text(answer));
  }
  process.exit(failed ? 2 : 0);
}
main().catch((e) => { console.error(e.message.split("\n")[0]); process.exit(1); });
