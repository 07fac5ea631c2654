// headgraph explorer: draws a run's circuit (served by `headgraph explore`, or embedded in a
// self-contained file by `headgraph render --out F.html`) and asks the server for details.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const STATIC = window.HEADGRAPH_STATIC || null; // embedded data: no server to ask
const GROUP_COLOURS = ["#2e7d32", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#455a64"];
const $ = (id) => document.getElementById(id);
let current = null; // {circuit, layout, labels}
let token = null; // set when the server lets this page edit labels (--allow-labels)

async function api(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const response = await fetch(`/api/${path}?${query}`);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function html(tag, text, parent) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function table(headers, rows, parent, cls = "") {
  const t = html("table", null, parent);
  if (cls) t.className = cls;
  const head = html("tr", null, t);
  headers.forEach((h) => html("th", h, head));
  rows.forEach((r) => {
    const tr = html("tr", null, t);
    r.forEach((c, i) => (html("td", String(c), tr).className = i === 0 ? "sv" : ""));
  });
  return t;
}

function filters() {
  return { min_prompts: $("min-prompts").value, min_share: $("min-share").value,
           min_relevance: $("min-relevance").value, top: $("top").value,
           prompt: $("prompt").value };
}

async function load() {
  try {
    status("loading…");
    current = STATIC || (await api("circuit", filters()));
    draw(current);
    await compare();
    const c = current.circuit;
    const scope = c.prompt ? `prompt ${c.prompt}` : `${c.n_prompts} prompts`;
    status(c.edges.length ? `${c.nodes.length} components, ${c.edges.length} edges (${scope})`
      : `no edges (${scope}): ${c.prompt ? "the seeds did not fire here" : "lower the thresholds"}`);
  } catch (error) {
    status(error.message, true);
  }
}

function draw({ circuit, layout, words = {} }) {
  const svg = $("graph");
  svg.replaceChildren();
  svg.setAttribute("width", layout.width);
  svg.setAttribute("height", layout.height);
  svg.classList.remove("searching");
  for (const [label, y] of layout.rows) {
    el("line", { x1: 0, x2: layout.width, y1: y, y2: y, class: "gridline" }, svg);
    el("text", { x: 6, y: y + 4, class: "axis" }, svg).textContent = label;
  }
  for (const [role, x] of layout.columns) {
    el("text", { x, y: layout.height - 12, "text-anchor": "middle", class: "axis role" }, svg)
      .textContent = words[role] ? `${role} · ${words[role].trim()}` : role;
  }
  const at = layout.positions;
  const by = $("width").value; // relevance, prompts or mean_share
  const most = Math.max(1e-9, ...circuit.edges.map((e) => e[by]));
  $("width-legend").textContent = `width: ${by.replace("_", " ")}`;
  const edges = el("g", {}, svg);
  circuit.edges.forEach((e, i) => {
    const [x1, y1] = at[e.source];
    const [x2, y2] = at[e.target];
    const bend = e.side === "key" ? 24 : -24;
    const mx = (x1 + x2) / 2 + bend;
    const path = el("path", {
      d: `M${x1},${y1 - 12} C${mx},${(y1 + y2) / 2} ${mx},${(y1 + y2) / 2} ${x2},${y2 + 12}`,
      class: `edge ${e.side}`, "stroke-width": 1 + (7 * e[by]) / most,
      "data-source": e.source, "data-target": e.target, "data-side": e.side, "data-index": i,
    }, edges);
    el("title", {}, path).textContent =
      `${e.source} → ${e.target} (${e.side}): ${e.prompts} prompts, mean share ` +
      `${e.mean_share.toFixed(3)}, relevance ${e.relevance.toFixed(3)}`;
    path.addEventListener("click", () => selectEdge(e, path));
  });
  const nodes = el("g", {}, svg);
  for (const n of circuit.nodes) {
    const [x, y] = at[n.id];
    const g = el("g", { class: `node ${n.fires ? "fires" : "site"}`, "data-id": n.id,
                        transform: `translate(${x},${y})` }, nodes);
    el("circle", { r: 12 }, g);
    el("text", { y: 4, "text-anchor": "middle" }, g).textContent = short(n.component);
    const named = (current && current.labels && current.labels[n.component]) || "";
    el("title", {}, g).textContent = `${n.id}${n.fires ? " (fires)" : ""}${named ? ` — ${named}` : ""}`;
    if (named) g.classList.add("labelled");
    g.addEventListener("click", () => selectNode(n, g));
  }
}

function short(component) {
  return component.replace("pos_embed", "pos").replace("embed", "emb").replace(":qk_bias", "b")
    .replace("attn_bias", "ab");
}

function select(element) {
  document.querySelectorAll(".selected").forEach((x) => x.classList.remove("selected"));
  element.classList.add("selected");
}

async function selectEdge(edge, path) {
  select(path);
  const panel = $("panel");
  panel.replaceChildren();
  html("h2", `${edge.source} → ${edge.target}`, panel);
  html("p", `${edge.side} side · ${edge.prompts} prompts · mean share ${edge.mean_share.toFixed(3)}` +
    ` · relevance ${edge.relevance.toFixed(3)}`, panel);
  if (STATIC) {
    html("p", `singular vectors: ${edge.singular_vectors.join(", ")}`, panel).className = "svs";
    html("p", "Details need the live explorer (headgraph explore).", panel).className = "hint";
    return;
  }
  try {
    const d = await api("edge", { source: edge.source, target: edge.target, side: edge.side });
    html("h2", "singular vectors of " + edge.target.split("@")[0], panel);
    table(["sv", "firings", "mean term"],
          d.singular_vectors.map(([k, n, t]) => [k, n, t.toFixed(3)]), panel, "svs");
    const e = d.effect;
    html("p", e == null ? "causal effect: not measured (headgraph verify)" :
      `causal effect (${e.mode}${e.boost ? ", boost" : ""}, ${e.metric}, ${e.prompts} prompts): ` +
      `${e.effect.toFixed(3)}, control ${e.control.toFixed(3)}, ` +
      `difference ${e.difference.toFixed(3)} ± ${e.stderr.toFixed(3)}`, panel).className = "effect";
    html("h2", `prompts (${d.prompt_ids.length})`, panel);
    html("p", d.prompt_ids.slice(0, 40).join(", ") + (d.prompt_ids.length > 40 ? " …" : ""), panel);
  } catch (error) {
    html("p", error.message, panel).className = "error";
  }
}

async function selectNode(node, g) {
  select(g);
  const panel = $("panel");
  panel.replaceChildren();
  html("h2", node.id, panel);
  labelBox(node.component, panel);
  if (STATIC || !node.component.includes(".") || node.component.includes(":")) {
    const what = node.component === "logits"
      ? "the prediction: the seeds feed it (green), each with its share of the answer"
      : node.fires ? "a head firing here" : "writes here without firing";
    html("p", what, panel);
    return;
  }
  try {
    const { detail, tokens } = await api("component", { node: node.id });
    html("p", `${detail.firings} firings with destination ${detail.role} in ${detail.prompts} prompts` +
      `, mean attention ${detail.mean_attention.toFixed(2)}`, panel);
    html("p", "sources: " + detail.sources.slice(0, 6).map(([r, n]) => `${r} (${n})`).join(", "), panel);
    html("h2", "singular vectors it uses", panel);
    const words = tokens.tokens || {};
    table(["sv", "sigma", "firings", "tokens"], detail.features.map((f) => [
      f.index, f.sigma.toFixed(2), f.firings,
      (words[`${f.head}:${f.index}`] || []).map(([t]) => t).join(" "),
    ]), panel, "features");
    if (tokens.note) html("p", tokens.note, panel).className = "hint";
  } catch (error) {
    html("p", error.message, panel).className = "error";
  }
}

// A component's label, and (with --allow-labels) a box to edit it.
function labelBox(target, panel) {
  const named = (current.labels || {})[target] || "";
  const shown = html("p", named ? `label: ${named}` : "no label", panel);
  shown.id = "label";
  if (!token) return;
  const input = html("input", null, panel);
  Object.assign(input, { id: "label-text", value: named, placeholder: "label, e.g. name mover" });
  const save = html("button", "save label", panel);
  save.id = "label-save";
  save.addEventListener("click", async () => {
    try {
      const response = await fetch("/api/label", {
        method: "POST", body: JSON.stringify({ target, text: input.value }),
        headers: { "Content-Type": "application/json", "X-Headgraph-Token": token },
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || response.statusText);
      current.labels = body.labels;
      shown.textContent = body.labels[target] ? `label: ${body.labels[target]}` : "no label";
      draw(current);
      status(`labelled ${target}`);
    } catch (error) {
      status(error.message, true);
    }
  });
}

async function findPaths() {
  if (STATIC) return status("path search needs the live explorer (headgraph explore)", true);
  clearPaths();
  try {
    const result = await api("paths", { to: $("path-to").value, from: $("path-from").value, top: 5 });
    const panel = $("panel");
    panel.replaceChildren();
    html("h2", `routes into ${result.target}`, panel);
    const list = html("ol", null, panel);
    list.id = "routes";
    let lit = 0;
    for (const route of result.routes) {
      html("li", `${route.score.toFixed(4)} · ${route.prompts} prompts · ` + routeText(route), list);
      for (const hop of route.hops) {
        const selector = `path.edge[data-source="${hop.upstream}@${hop.role}"]` +
          `[data-target="${hop.downstream}"][data-side="${hop.side}"]`;
        document.querySelectorAll(selector).forEach((p) => { p.classList.add("on-path"); lit++; });
      }
    }
    $("graph").classList.add("searching");
    status(`${result.routes.length} routes; ${lit} of their edges drawn (lower the thresholds to see more)`);
  } catch (error) {
    status(error.message, true);
  }
}

function routeText(route) {
  const first = route.hops[0];
  return [`${route.truncated ? "… " : ""}${first.upstream}@${first.role}`,
          ...route.hops.map((h) => `-${h.side}-> ${h.downstream}`)].join(" ");
}

function clearPaths() {
  document.querySelectorAll(".on-path").forEach((p) => p.classList.remove("on-path"));
  $("graph").classList.remove("searching");
}

async function substitutes() {
  const chosen = document.querySelector(".node.selected");
  if (!chosen || STATIC) return status("select a head first (live explorer)", true);
  const head = chosen.dataset.id.split("@")[0];
  document.querySelectorAll(".node.substitute").forEach((n) => {
    n.classList.remove("substitute");
    n.querySelector("circle").style.stroke = "";
  });
  try {
    const result = await api("redundancy", { to: head });
    result.substitutes.forEach((group, i) => {
      const colour = GROUP_COLOURS[i % GROUP_COLOURS.length];
      for (const [member] of group.members) {
        const node = document.querySelector(`.node[data-id="${member}"]`);
        if (node) {
          node.classList.add("substitute");
          node.querySelector("circle").style.stroke = colour;
        }
      }
    });
    const c = result.connectivity;
    status(`${head}: ${result.substitutes.length} substitute groups; ` +
      `node-disjoint routes per prompt: median ${c.median}, min ${c.minimum}, max ${c.maximum}`);
  } catch (error) {
    status(error.message, true);
  }
}

// Another run's circuit against this one: gained edges green, changed purple, the same faded;
// the lost ones (only in the other run) are listed in the panel.
async function compare() {
  const against = $("against").value;
  document.querySelectorAll("path.edge").forEach((p) =>
    p.classList.remove("diff-gained", "diff-changed", "diff-same"));
  $("graph").classList.toggle("comparing", Boolean(against));
  $("diff-legend").textContent = against
    ? `against ${against}: green only here, purple changed, faded the same` : "";
  if (!against || STATIC) return;
  try {
    const result = await api("diff", { against, min_prompts: $("min-prompts").value });
    const status = new Map(result.edges.map((e) => [`${e.source}|${e.target}|${e.side}`, e.status]));
    document.querySelectorAll("path.edge").forEach((p) => {
      const found = status.get(`${p.dataset.source}|${p.dataset.target}|${p.dataset.side}`);
      if (found) p.classList.add(`diff-${found}`);
    });
    const lost = result.edges.filter((e) => e.status === "lost");
    const panel = $("panel");
    panel.replaceChildren();
    html("h2", `against run ${result.run_a}`, panel);
    const counts = ["gained", "lost", "changed", "same"]
      .map((s) => `${result.edges.filter((e) => e.status === s).length} ${s}`).join(", ");
    html("p", `edges: ${counts}`, panel).id = "diff-counts";
    html("p", `heads gained: ${result.heads_gained.join(", ") || "none"}; ` +
      `lost: ${result.heads_lost.join(", ") || "none"}`, panel);
    if (lost.length) {
      html("h3", "only in the other run", panel);
      table(["edge", "share there"], lost.map((e) => [`${e.source} -${e.side}-> ${e.target}`,
        e.share_a.toFixed(3)]), panel, "lost");
    }
  } catch (error) {
    status(error.message, true);
  }
}

async function init() {
  for (const id of ["min-prompts", "min-share", "min-relevance", "top", "prompt"]) $(id).addEventListener("change", load);
  $("width").addEventListener("change", () => current && draw(current));
  $("path-go").addEventListener("click", findPaths);
  $("path-to").addEventListener("keydown", (e) => e.key === "Enter" && findPaths());
  $("path-clear").addEventListener("click", clearPaths);
  $("substitutes").addEventListener("click", substitutes);
  $("against").addEventListener("change", compare);
  if (STATIC) {
    $("run").textContent = `run ${STATIC.circuit.run} (static file)`;
    document.querySelectorAll("header label, header .search, #substitutes, #against")
      .forEach((x) => (x.style.display = "none"));
  } else {
    try {
      const { run, runs, token: granted } = await api("runs");
      token = granted;
      $("run").textContent = `run ${run}`;
      for (const other of runs.filter((r) => r.run !== run)) {
        html("option", other.run, $("against")).value = other.run;
      }
      for (const p of await api("prompts")) {
        const option = html("option", `${p.id}: ${p.text.slice(0, 60)}`, $("prompt"));
        option.value = p.id;
      }
    } catch (error) {
      status(error.message, true);
    }
  }
  await load();
  document.body.dataset.ready = "1";
}

init();
