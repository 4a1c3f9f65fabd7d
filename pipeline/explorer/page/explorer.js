// The explorer page: draws what /api/tasks and /api/tasks/{id} return, and polls for new blocks.
// Text goes in with textContent only: nothing read from the chain is ever parsed as HTML.
"use strict";

const params = new URLSearchParams(location.search);
const taskId = params.get("task");
let shown = null; // the task view on the page
let fetchedAt = 0; // when it was fetched (ms), to count windows down between polls

function $(id) { return document.getElementById(id); }

function list(values) { return values.length ? values.join(", ") : "-"; }

function eth(wei) { return (Number(BigInt(wei) / 10n ** 12n) / 1e6).toFixed(4); }

function duration(seconds) {
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
}

function chainNow() { return shown.now + (Date.now() - fetchedAt) / 1000; }

function row(cells, attributes = {}) {
  const tr = document.createElement("tr");
  for (const [name, value] of Object.entries(attributes)) tr.setAttribute(name, value);
  for (const cell of cells) {
    const td = document.createElement("td");
    const [text, field, className] = Array.isArray(cell) ? cell : [cell];
    td.textContent = text;
    if (field) td.dataset.field = field;
    if (className) td.className = className;
    tr.appendChild(td);
  }
  return tr;
}

function fill(tableId, rows) { $(tableId).querySelector("tbody").replaceChildren(...rows); }

function say(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

async function load(path) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store" });
  } catch {
    return { error: "the explorer's server does not answer: is `stakelearn explorer` still running?" };
  }
  return response.json();
}

function showTasks(data) {
  $("source").textContent = `protocol ${data.protocol} on ${data.chain} (chain id ${data.chain_id}), block ${data.block}`;
  fill("task-list", data.tasks.map((t) => {
    const tr = row([t.id, t.status, `${t.epochs_run} of ${t.max_epochs}`, t.clients, t.verification, [t.requester, "", "address"]]);
    const link = document.createElement("a");
    link.href = `?task=${t.id}`;
    link.textContent = `task ${t.id}`;
    tr.firstChild.replaceChildren(link);
    return tr;
  }));
  if (!data.tasks.length) say("no task has been created on this protocol yet");
  $("tasks").hidden = false;
}

function windowText(claim) {
  if (claim.state !== "pending" && claim.state !== "challenged") return "closed";
  const left = claim.window_ends - chainNow();
  return left > 0 ? `${duration(left)} left` : "over: anyone may finalize";
}

function epochLabel(epoch) { return epoch.claimed ? `${epoch.epoch} (claimed)` : String(epoch.epoch); }

function verificationText(epoch) {
  const v = epoch.verification;
  if (v.state === "verified") return "verified (proof checked on submission)";
  if (v.state === "pending") return `claimed, pending: ${windowText(v)}`;
  if (v.state === "challenged") return `claimed, challenged (${v.open_disputes} open): ${windowText(v)}`;
  if (!v.challenges) return "final (its window passed unchallenged)";
  return `final (after ${v.challenges} dispute${v.challenges > 1 ? "s" : ""} it won)`;
}

function showTask(data) {
  const p = data.params;
  $("source").textContent = `protocol ${data.protocol} on ${data.chain} (chain id ${data.chain_id}), block ${data.block}`;
  $("task-title").textContent = `Task ${data.id}: ${data.status}, ${data.epochs_run} of ${p.max_epochs} epochs`;
  $("problems").hidden = !data.problems.length;
  $("problems").textContent = data.problems.length ? `The chain's history does not check: ${data.problems.join("; ")}` : "";
  fill("params", [
    ["clients n, tolerated f, selected m", `${p.n}, ${p.f}, ${p.m}`],
    ["rule", p.rule],
    ["verification", p.verification],
    ["fee per epoch (ETH)", eth(p.fee_per_epoch)],
    ["escrow left (ETH)", eth(p.escrow)],
    ["target accuracy", `${(p.target_accuracy * 100).toFixed(2)} % on ${p.evaluation_size} samples`],
    ["flag ratio", `a score over ${data.flag_ratio}× the reference`],
  ].map(([k, v]) => row([k, v])));
  fill("deadlines", Object.entries(data.deadlines).map(([what, at]) => {
    const left = at - chainNow();
    return row([what, left > 0 ? `in ${duration(left)}` : "passed"]);
  }));
  if (!Object.keys(data.deadlines).length) fill("deadlines", [row(["none", `the task is ${data.status}`])]);
  const s = data.settlement;
  fill("settlement", s ? [
    ...(s.correct !== undefined ? [row(["accuracy", `${s.correct} of ${s.samples} correct (${s.how})`], { "data-field": "accuracy" }),
      row(["target", s.target_reached ? "reached" : "missed"])] : []),
    ...(s.rewarded !== undefined ? [row(["paid to clients (ETH)", eth(s.rewarded)]), row(["refunded (ETH)", eth(s.refunded)]),
      row(["burnt (ETH)", eth(s.burnt)])] : []),
  ] : [row(["not settled yet", ""])]);
  const claim = data.accuracy_claim;
  if (claim) {
    const what = `${claim.correct} of ${p.evaluation_size} correct, ${claim.state}: ${windowText(claim)}`;
    $("settlement").querySelector("tbody").prepend(row(["accuracy claimed", what], { "data-field": "accuracy-claim" }));
  }
  const slashedEver = new Set(data.epochs.flatMap((e) => e.slashed));
  fill("parties", [
    row(["requester", [data.parties.requester, "", "address"], "", ""]),
    ...data.parties.aggregators.map((a) => row(["aggregator", [a, "", "address"], "", ""])),
    ...data.parties.clients.map((c, i) => row(
      [`client ${i}`, [c.address, "", "address"], [eth(c.stake), "stake"], [eth(c.credit), "credit"]],
      { "data-client": i, class: slashedEver.has(i) ? "slashed" : "" })),
  ]);
  fill("epochs", data.epochs.map((e) => row([
    epochLabel(e), [list(e.selected), "selected"], [list(e.left_out), "left_out"], [list(e.absent), "absent"],
    [list(e.flagged), "flagged"], [list(e.slashed), "slashed"], [e.gas.toLocaleString("en"), "gas"],
    [verificationText(e), "verification", `state-${e.verification.state}`],
  ], e.claimed ? { "data-claimed-epoch": e.epoch } : { "data-epoch": e.epoch })));
  $("claims-section").hidden = !data.claims.length;
  fill("claims", data.claims.map((c) => row([
    c.epoch, c.nonce, [c.proposer, "", "address"], [c.state, "state", `state-${c.state}`], c.challenges, [windowText(c), "window"],
  ], { "data-nonce": c.nonce })));
  $("scores-note").textContent = `Each cell is a client's raw Krum score over its round's reference score (the (p − f)-th smallest `
    + `present score); a present client over ${data.flag_ratio}× is flagged. Empty: absent.`;
  drawScores(data);
  drawStakes(data);
  drawGas(data);
  drawAccuracy(data);
  $("task").hidden = false;
}

function chart(id) {
  const element = $(id);
  return echarts.getInstanceByDom(element) || echarts.init(element, null, { renderer: "canvas" });
}

function drawScores(data) {
  const cells = data.epochs.flatMap((e, x) => e.ratios.map((r, y) => [x, y, r === null ? "-" : Number(r.toFixed(2))]));
  const top = Math.max(data.flag_ratio * 2, ...cells.map((c) => (c[2] === "-" ? 0 : c[2])));
  chart("scores-chart").setOption({
    animation: false,
    tooltip: { formatter: (c) => `client ${c.value[1]}, epoch ${data.epochs[c.value[0]].epoch}: `
      + `score ${data.epochs[c.value[0]].scores[c.value[1]]}, ${c.value[2]}× the reference` },
    grid: { left: 80, right: 20, top: 20, bottom: 90 },
    xAxis: { type: "category", name: "epoch", data: data.epochs.map(epochLabel) },
    yAxis: { type: "category", data: data.parties.clients.map((_, i) => `client ${i}`), inverse: true },
    visualMap: {
      type: "piecewise", orient: "horizontal", left: "center", bottom: 0, dimension: 2, max: top,
      pieces: [
        { lt: 1, label: "below the reference", color: "#cfe8d5" },
        { gte: 1, lte: data.flag_ratio, label: `up to the flag ratio (${data.flag_ratio}×)`, color: "#f6d98b" },
        { gt: data.flag_ratio, label: "over the flag ratio: flagged", color: "#e0675a" },
      ],
    },
    series: [{ type: "heatmap", data: cells, label: { show: true, formatter: (c) => (c.value[2] === "-" ? "" : `${c.value[2]}×`) } }],
  }, true);
}

function drawStakes(data) {
  chart("stakes-chart").setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { type: "scroll", bottom: 0 },
    grid: { left: 60, right: 20, top: 20, bottom: 50 },
    xAxis: { type: "category", data: data.stakes.points },
    yAxis: { type: "value", name: "ETH", min: 0 },
    series: data.stakes.wei.map((wei, i) => ({ name: `client ${i}`, type: "line", step: "end", data: wei.map((w) => Number(eth(w))) })),
  }, true);
}

function drawGas(data) {
  chart("gas-chart").setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    grid: { left: 80, right: 20, top: 20, bottom: 30 },
    xAxis: { type: "category", name: "epoch", data: data.epochs.map(epochLabel) },
    yAxis: { type: "value", name: "gas" },
    series: [{ type: "bar", data: data.epochs.map((e) => e.gas), itemStyle: { color: "#5b7fbf" } }],
  }, true);
}

function drawAccuracy(data) {
  const run = data.run;
  $("run-section").hidden = !run;
  if (!run) return;
  if (run.error) {
    say(run.error);
    $("run-section").hidden = true;
    return;
  }
  chart("accuracy-chart").setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    grid: { left: 60, right: 20, top: 20, bottom: 30 },
    xAxis: { type: "category", name: "epoch", data: run.test_accuracy.map((_, e) => e) },
    yAxis: { type: "value", min: 0, max: 1, name: "test accuracy" },
    series: [{ type: "line", data: run.test_accuracy.map((a) => Number(a.toFixed(3))) }],
  }, true);
}

async function poll() {
  const data = await load(taskId === null ? "/api/tasks" : `/api/tasks/${encodeURIComponent(taskId)}`);
  if (data.error) {
    say(data.error);
    $("tasks").hidden = $("task").hidden = true;
  } else {
    say("");
    fetchedAt = Date.now();
    if (taskId === null) showTasks(data);
    else if (!shown || shown.block !== data.block || $("task").hidden) { shown = data; showTask(data); }
    else shown.now = data.now;
    $("updated").textContent = `block ${data.block}; looks again every ${data.refresh} s`;
  }
  setTimeout(poll, 1000 * (data.refresh || 5));
}

// Windows count down between polls.
setInterval(() => {
  if (!shown || $("task").hidden) return;
  for (const tr of $("claims").querySelectorAll("tr[data-nonce]")) {
    const claim = shown.claims.find((c) => String(c.nonce) === tr.dataset.nonce);
    tr.querySelector("[data-field=window]").textContent = windowText(claim);
  }
  for (const tr of $("epochs").querySelectorAll("tr[data-claimed-epoch]")) {
    const epoch = shown.epochs.find((e) => e.claimed && String(e.epoch) === tr.dataset.claimedEpoch);
    tr.querySelector("[data-field=verification]").textContent = verificationText(epoch);
  }
}, 1000);

window.addEventListener("resize", () => document.querySelectorAll(".chart").forEach((c) => echarts.getInstanceByDom(c)?.resize()));
poll();
