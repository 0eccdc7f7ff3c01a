// zkpy dashboard: polls the AdminServer's JSON every second. No build step, no dependencies.
// Everything that comes from the server (znode names and data, addresses) is shown through
// textContent, never as HTML.
"use strict";

(function () {
  const POLL_MS = 1000;
  const HISTORY_POINTS = 120;
  const ZNODE_REFRESH_MS = 3000;

  const state = {
    previous: null,          // the last overview sample, for rates
    rates: [],               // requests per second, newest last
    latencies: [],           // average latency (ms) of the requests in each interval
    selected: null,          // selected znode path
    expanded: new Set(["/"]),
    children: new Map(),     // path -> [child names] as last fetched
    polls: 0,
    lastZnodeLoad: 0,
  };

  // -- helpers -------------------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setText(id, value) {
    const node = $(id);
    if (node) node.textContent = value === undefined || value === null ? "–" : String(value);
  }

  function setBadge(id, text, kind) {
    const node = $(id);
    if (!node) return;
    node.textContent = text;
    node.className = "badge" + (kind ? " badge-" + kind : "");
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "–" : String(cell);
      tr.appendChild(td);
    }
    return tr;
  }

  function replaceRows(tbody, rows) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    for (const r of rows) tbody.appendChild(r);
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "–";
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + "d " + h + "h " + m + "m";
    if (h) return h + "h " + m + "m " + s + "s";
    if (m) return m + "m " + s + "s";
    return s + "s";
  }

  function number(value, digits) {
    if (typeof value !== "number" || !isFinite(value)) return "–";
    return digits === undefined ? value.toLocaleString("en-US") : value.toFixed(digits);
  }

  function utc(ms) {
    if (!ms) return "0";
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function roleKind(mode) {
    if (mode === "leader" || mode === "standalone") return "leader";
    if (mode === "follower" || mode === "observer") return "ok";
    if (mode === "unreachable" || mode === "error") return "bad";
    return "warn";
  }

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (body === null) throw new Error(url + ": HTTP " + response.status);
    return { status: response.status, body: body };
  }

  // -- overview and chart ----------------------------------------------------------------------

  function showOverview(data) {
    const s = data.server;
    setText("server-address", s.address);
    setBadge("server-mode", s.mode, roleKind(s.mode));
    setText("server-version", s.version);
    setText("server-uptime", duration(s.uptime_ms));
    setText("stat-znodes", number(s.znode_count));
    setText("stat-sessions", number(s.sessions));
    setText("stat-connections", number(s.connections));
    setText("stat-watches", number(s.watch_count));
    setText("stat-ephemerals", number(s.ephemerals_count));
    setText("stat-outstanding", number(s.outstanding_requests));
    setText("stat-zxid", s.zxid);
    setText("latency-total", s.latency.min + "/" + number(s.latency.avg, 2) + "/" + s.latency.max);

    const prev = state.previous;
    if (prev) {
      const seconds = Math.max(0.001, (data.time_ms - prev.time_ms) / 1000);
      const requests = Math.max(0, s.packets_received - prev.server.packets_received);
      const count = s.latency_count - prev.server.latency_count;
      const total = s.latency_total_ms - prev.server.latency_total_ms;
      const rate = requests / seconds;
      const latency = count > 0 ? total / count : 0;
      push(state.rates, rate);
      push(state.latencies, latency);
      setText("now-rate", number(rate, 1));
      setText("now-latency", number(latency, 2));
    }
    state.previous = data;
    drawChart();
  }

  function push(series, value) {
    series.push(value);
    if (series.length > HISTORY_POINTS) series.shift();
  }

  function drawChart() {
    const canvas = $("traffic-chart");
    if (!canvas || !canvas.getContext) return;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 640;
    const height = canvas.clientHeight || 180;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const pad = { left: 46, right: 46, top: 8, bottom: 18 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const maxRate = niceMax(Math.max(1, ...state.rates));
    const maxLatency = niceMax(Math.max(1, ...state.latencies));

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = pad.top + plotH - (plotH * i) / 4;
      ctx.strokeStyle = "#e6ebf0";
      ctx.beginPath(); ctx.moveTo(pad.left, y); ctx.lineTo(pad.left + plotW, y); ctx.stroke();
      ctx.fillStyle = "#2f6fdb"; ctx.textAlign = "right";
      ctx.fillText(shortNumber((maxRate * i) / 4), pad.left - 6, y + 4);
      ctx.fillStyle = "#e07b1a"; ctx.textAlign = "left";
      ctx.fillText(shortNumber((maxLatency * i) / 4), pad.left + plotW + 6, y + 4);
    }
    ctx.fillStyle = "#6b7785"; ctx.textAlign = "left";
    ctx.fillText("req/s", 4, height - 4);
    ctx.textAlign = "right";
    ctx.fillText("ms", width - 4, height - 4);
    ctx.textAlign = "center";
    ctx.fillText("-2 min", pad.left + 18, height - 4);
    ctx.fillText("now", pad.left + plotW - 10, height - 4);

    line(ctx, state.rates, maxRate, "#2f6fdb", pad, plotW, plotH);
    line(ctx, state.latencies, maxLatency, "#e07b1a", pad, plotW, plotH);
  }

  function line(ctx, series, max, color, pad, plotW, plotH) {
    if (series.length < 1) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    const step = plotW / (HISTORY_POINTS - 1);
    const start = HISTORY_POINTS - series.length;
    series.forEach(function (value, i) {
      const x = pad.left + (start + i) * step;
      const y = pad.top + plotH - (plotH * Math.min(value, max)) / max;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }

  function niceMax(value) {
    const exponent = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (value <= m * exponent) return m * exponent;
    return 10 * exponent;
  }

  function shortNumber(value) {
    if (value >= 1e6) return trim((value / 1e6).toFixed(1)) + "M";
    if (value >= 1e3) return trim((value / 1e3).toFixed(1)) + "k";
    return value >= 10 || value === 0 ? String(Math.round(value)) : trim(value.toFixed(2));
  }

  function trim(text) { return text.indexOf(".") < 0 ? text : text.replace(/0+$/, "").replace(/\.$/, ""); }

  // -- ensemble ------------------------------------------------------------------------------------

  function showCluster(status) {
    const kinds = { healthy: "ok", degraded: "warn", down: "bad" };
    setBadge("cluster-state", status.clusterState || "unknown", kinds[status.clusterState] || "muted");
    setText("cluster-quorum", status.quorum ? "yes" : "no");
    setText("cluster-leader", status.leader || "none");
    setText("cluster-healthy", status.healthyMembers + " / " + (status.members || []).length);
    setText("cluster-changes", status.leaderChangesLastHour);
    setText("cluster-p99", number(status.p99RequestLatencyMs) + " ms" + (status.p99IsUpperBound ? " (max)" : ""));
    const rows = (status.members || []).map(function (m) {
      const lat = m.latency ? m.latency.min + "/" + number(m.latency.avg, 2) + "/" + m.latency.max : "–";
      const role = el("span", "badge badge-" + roleKind(m.mode), m.mode);
      return row([m.address, role, m.zxid, lat, m.connections, m.nodeCount, m.error || ""]);
    });
    replaceRows($("members-body"), rows);
  }

  // -- sessions ------------------------------------------------------------------------------------

  function showSessions(data) {
    setText("sessions-count", data.count + (data.truncated ? " (first " + data.sessions.length + " shown)" : ""));
    const rows = data.sessions.map(function (s) {
      return row([s.sessionId, s.client || "(disconnected)", s.timeoutMs + " ms",
                  s.expiresInMs === null ? "–" : duration(s.expiresInMs), s.ephemerals, s.watches,
                  s.closing ? "closing" : (s.client && s.client.indexOf("etcd ") === 0 ? "etcd" :
                                           (s.client ? "connected" : "detached"))]);
    });
    if (!rows.length) {
      const empty = row(["no sessions", "", "", "", "", "", ""]);
      empty.className = "muted";
      rows.push(empty);
    }
    replaceRows($("sessions-body"), rows);
  }

  // -- znode browser -------------------------------------------------------------------------------

  function childPath(parent, name) { return parent === "/" ? "/" + name : parent + "/" + name; }

  function ancestors(path) {
    const out = ["/"];
    if (path === "/") return out;
    let current = "";
    for (const part of path.split("/").slice(1)) {
      current += "/" + part;
      out.push(current);
    }
    return out;
  }

  async function loadChildren(path) {
    try {
      const result = await getJSON("/api/znode?path=" + encodeURIComponent(path));
      state.children.set(path, result.status === 200 && result.body.children ? result.body.children : []);
    } catch (e) {
      state.children.set(path, []);
    }
  }

  async function renderTree() {
    for (const path of Array.from(state.expanded)) {
      if (!state.children.has(path)) await loadChildren(path);
    }
    const root = document.createElement("ul");
    root.appendChild(treeItem("/", "/"));
    const tree = $("tree");
    while (tree.firstChild) tree.removeChild(tree.firstChild);
    tree.appendChild(root);
  }

  function treeItem(path, label) {
    const li = el("li");
    li.setAttribute("role", "treeitem");
    const line = el("div", "row" + (path === state.selected ? " selected" : ""));
    line.dataset.path = path;
    const kids = state.children.get(path);
    const open = state.expanded.has(path);
    const toggle = el("span", "toggle", kids && kids.length === 0 ? "·" : (open ? "▾" : "▸"));
    toggle.addEventListener("click", function (event) {
      event.stopPropagation();
      if (open) state.expanded.delete(path); else state.expanded.add(path);
      renderTree();
    });
    line.appendChild(toggle);
    line.appendChild(el("span", "name", label));
    if (kids && kids.length) line.appendChild(el("span", "count", "(" + kids.length + ")"));
    line.addEventListener("click", function () { select(path); });
    li.appendChild(line);
    if (open && kids && kids.length) {
      const ul = el("ul");
      ul.setAttribute("role", "group");
      for (const name of kids) ul.appendChild(treeItem(childPath(path, name), name));
      li.appendChild(ul);
    }
    return li;
  }

  async function select(path) {
    state.selected = path;
    for (const a of ancestors(path)) state.expanded.add(a);
    if (location.hash !== "#" + path) history.replaceState(null, "", "#" + path);
    await loadZnode(path);
    await renderTree();
  }

  async function loadZnode(path) {
    state.lastZnodeLoad = Date.now();
    let result;
    try {
      result = await getJSON("/api/znode?path=" + encodeURIComponent(path));
    } catch (e) {
      showZnodeError(path, String(e));
      return;
    }
    const view = result.body;
    if (result.status !== 200) {
      showZnodeError(path, view.error || ("HTTP " + result.status));
      state.children.delete(path);
      return;
    }
    if (view.children) state.children.set(path, view.children);
    showZnode(view);
  }

  function showZnodeError(path, message) {
    setText("znode-path", path);
    const error = $("znode-error");
    error.textContent = message;
    error.classList.remove("hidden");
  }

  function showZnode(view) {
    setText("znode-path", view.path);
    setBadge("znode-kind", view.kind, "muted");
    const error = $("znode-error");
    if (view.error) { error.textContent = view.error; error.classList.remove("hidden"); }
    else { error.textContent = ""; error.classList.add("hidden"); }

    const data = $("znode-data");
    if (view.data) {
      data.textContent = view.data.value === "" ? "(empty)" : view.data.value;
      setText("znode-encoding", view.data.encoding + ", " + view.data.length + " bytes" + (view.data.truncated ? ", truncated" : ""));
    } else {
      data.textContent = "(not readable)";
      setText("znode-encoding", "");
    }

    const st = view.stat;
    replaceRows($("znode-stat"), [
      row(["czxid", st.czxid]), row(["mzxid", st.mzxid]), row(["pzxid", st.pzxid]),
      row(["ctime", utc(st.ctime)]), row(["mtime", utc(st.mtime)]),
      row(["version", st.version]), row(["cversion", st.cversion]), row(["aversion", st.aversion]),
      row(["ephemeralOwner", st.ephemeralOwner]), row(["dataLength", st.dataLength]),
      row(["numChildren", st.numChildren]),
    ]);
    replaceRows($("znode-acl"), (view.acl || []).map(function (a) { return row([a.scheme, a.id, a.perms]); }));

    const list = $("znode-children");
    while (list.firstChild) list.removeChild(list.firstChild);
    const children = view.children || [];
    setText("znode-children-count", st.numChildren + (view.childrenTruncated ? " (first " + children.length + " shown)" : ""));
    for (const name of children) {
      const li = el("li");
      const link = el("span", "link", name);
      link.addEventListener("click", function () { select(childPath(view.path, name)); });
      li.appendChild(link);
      list.appendChild(li);
    }
  }

  function pathFromHash() {
    const raw = decodeURIComponent(location.hash.replace(/^#/, ""));
    return raw.startsWith("/") ? raw : "/";
  }

  // -- the poll loop ---------------------------------------------------------------------------

  async function poll() {
    state.polls += 1;
    try {
      const overview = await getJSON("/api/overview");
      showOverview(overview.body);
      const status = await getJSON("/commands/cluster_status");
      showCluster(status.body);
      if (state.polls % 2 === 1) showSessions((await getJSON("/api/sessions")).body);
      if (state.selected && Date.now() - state.lastZnodeLoad > ZNODE_REFRESH_MS) {
        await loadZnode(state.selected);
      }
      setBadge("conn-status", "live", "ok");
      document.body.dataset.ready = "true";
    } catch (e) {
      setBadge("conn-status", "offline", "bad");
    }
    setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("znode-refresh").addEventListener("click", function () {
      if (state.selected) {
        state.children.clear();
        select(state.selected);
      }
    });
    window.addEventListener("hashchange", function () {
      const path = pathFromHash();
      if (path !== state.selected) select(path);
    });
    window.addEventListener("resize", drawChart);
    select(pathFromHash());
    poll();
  });
})();
