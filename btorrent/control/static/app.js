/*
 * btorrent's web page: a small client of the Transmission RPC served on the
 * same origin at /transmission/rpc.
 *
 * Everything that comes from the daemon (torrent and file names, tracker
 * URLs, error strings, client names) is put into the page as text with
 * textContent, never parsed as HTML.
 */
"use strict";

const RPC_URL = "/transmission/rpc";
const SESSION_HEADER = "X-Transmission-Session-Id";
const REFRESH_MS = 2000;

const LIST_FIELDS = [
  "id", "name", "totalSize", "sizeWhenDone", "percentDone", "status",
  "rateDownload", "rateUpload", "peersConnected", "peersSendingToUs",
  "peersGettingFromUs", "eta", "uploadRatio", "error", "errorString",
  "recheckProgress", "isFinished", "metadataPercentComplete",
];

const DETAIL_FIELDS = [
  "id", "name", "hashString", "downloadDir", "totalSize", "pieceCount",
  "pieceSize", "comment", "addedDate", "downloadedEver", "uploadedEver",
  "corruptEver", "haveValid", "files", "fileStats", "peers", "trackerStats",
];

// Transmission's numbering of torrent states.
const STATE_NAMES = [
  "Stopped", "Queued to verify", "Verifying", "Queued",
  "Downloading", "Queued to seed", "Seeding",
];
const STOPPED = 0;
const CHECKING = 2;
const DOWNLOADING = 4;

const ERROR_PREFIXES = ["", "Tracker warning: ", "Tracker error: ", "Error: "];
const ANNOUNCE_STATES = ["Inactive", "Waiting", "Queued", "Announcing"];

const $ = (id) => document.getElementById(id);

/* ---------------------------------------------------------------- RPC */

let sessionId = "";

class RpcError extends Error {}

/**
 * Call one RPC method and return its "arguments".  A 409 reply carries
 * the session id to send from then on: keep it and retry once.
 */
async function rpc(method, args = {}) {
  const body = JSON.stringify({ method: method, arguments: args });
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = { "Content-Type": "application/json" };
    if (sessionId) {
      headers[SESSION_HEADER] = sessionId;
    }
    const response = await fetch(RPC_URL, {
      method: "POST", headers: headers, body: body,
      credentials: "same-origin", cache: "no-store",
    });
    if (response.status === 409) {
      sessionId = response.headers.get(SESSION_HEADER) || "";
      continue;
    }
    if (!response.ok) {
      throw new RpcError(`${response.status} ${response.statusText}`);
    }
    const reply = await response.json();
    if (reply.result !== "success") {
      throw new RpcError(String(reply.result));
    }
    return reply.arguments || {};
  }
  throw new RpcError("the daemon refused the session id");
}

/* --------------------------------------------------------- formatting */

function formatBytes(n) {
  if (!(n > 0)) {
    return "0 B";
  }
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  if (i === 0) {
    return `${n} B`;
  }
  return `${n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)} ${units[i]}`;
}

function formatRate(n) {
  return `${formatBytes(n)}/s`;
}

function formatPercent(fraction) {
  if (fraction >= 1) {
    return "100%";
  }
  return `${(Math.floor(Math.max(fraction, 0) * 1000) / 10).toFixed(1)}%`;
}

function formatDuration(seconds) {
  const parts = [];
  const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  for (const [name, size] of units) {
    if (seconds >= size || (name === "s" && parts.length === 0)) {
      parts.push(`${Math.floor(seconds / size)} ${name}`);
      seconds %= size;
    }
    if (parts.length === 2) {
      break;
    }
  }
  return parts.join(" ");
}

function formatRatio(ratio) {
  if (ratio === -2) {
    return "∞";
  }
  return ratio >= 0 ? ratio.toFixed(2) : "–";
}

function formatDate(seconds) {
  return seconds > 0 ? new Date(seconds * 1000).toLocaleString() : "–";
}

function stateText(t) {
  if (t.metadataPercentComplete < 1 && t.status !== STOPPED) {
    return `Fetching metadata ${formatPercent(t.metadataPercentComplete)}`;
  }
  if (t.status === CHECKING) {
    return `Verifying ${formatPercent(t.recheckProgress)}`;
  }
  if (t.status === STOPPED && t.isFinished) {
    return "Finished";
  }
  return STATE_NAMES[t.status] || `State ${t.status}`;
}

/* ---------------------------------------------------- the torrent list */

const rows = new Map(); // torrent id -> <li>

function setText(parent, selector, text) {
  const element = parent.querySelector(selector);
  if (element.textContent !== text) {
    element.textContent = text;
  }
}

function newRow(id) {
  const row = $("row-template").content.firstElementChild.cloneNode(true);
  row.dataset.id = String(id);
  const progress = row.querySelector(".progress");
  progress.setAttribute("role", "progressbar");
  progress.setAttribute("aria-valuemin", "0");
  progress.setAttribute("aria-valuemax", "100");
  return row;
}

function updateRow(row, t) {
  row.dataset.status = String(t.status);
  setText(row, ".name", t.name);
  setText(row, ".size", t.totalSize > 0 ? formatBytes(t.totalSize) : "–");
  const percent = formatPercent(t.percentDone);
  setText(row, ".percent", percent);
  row.querySelector(".bar").style.width = `${Math.min(t.percentDone, 1) * 100}%`;
  row.querySelector(".progress").setAttribute(
    "aria-valuenow", String(Math.floor(t.percentDone * 100)));
  setText(row, ".state", stateText(t));
  setText(row, ".rates", `↓ ${formatRate(t.rateDownload)} ↑ ${formatRate(t.rateUpload)}`);
  setText(row, ".peers", `${t.peersConnected} peer${t.peersConnected === 1 ? "" : "s"}`);
  const showEta = t.status === DOWNLOADING && t.eta >= 0;
  setText(row, ".eta", showEta ? `ETA ${formatDuration(t.eta)}` : "");
  setText(row, ".ratio", `Ratio ${formatRatio(t.uploadRatio)}`);
  const error = row.querySelector(".error-text");
  const errorText = t.error ? (ERROR_PREFIXES[t.error] || "") + t.errorString : "";
  error.hidden = !errorText;
  if (error.textContent !== errorText) {
    error.textContent = errorText;
  }
  row.querySelector(".start").hidden = t.status !== STOPPED;
  row.querySelector(".stop").hidden = t.status === STOPPED;
  row.classList.toggle("stopped", t.status === STOPPED);
  row.classList.toggle("has-error", Boolean(t.error));
}

function renderList(torrents) {
  const list = $("torrents");
  torrents.sort((a, b) => a.id - b.id);
  const seen = new Set();
  let previous = null;
  for (const t of torrents) {
    seen.add(t.id);
    let row = rows.get(t.id);
    if (!row) {
      row = newRow(t.id);
      rows.set(t.id, row);
    }
    updateRow(row, t);
    const expected = previous ? previous.nextElementSibling : list.firstElementChild;
    if (expected !== row) {
      list.insertBefore(row, expected);
    }
    previous = row;
  }
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.remove();
      rows.delete(id);
    }
  }
  $("empty").hidden = torrents.length !== 0;
}

function renderStats(stats) {
  const current = stats["current-stats"] || {};
  const total = stats["cumulative-stats"] || {};
  $("status-rates").textContent =
    `↓ ${formatRate(stats.downloadSpeed)} ↑ ${formatRate(stats.uploadSpeed)}`;
  $("status-session").textContent =
    `Session: ${formatBytes(current.downloadedBytes)} down, ` +
    `${formatBytes(current.uploadedBytes)} up`;
  $("status-total").textContent =
    `Total: ${formatBytes(total.downloadedBytes)} down, ` +
    `${formatBytes(total.uploadedBytes)} up`;
  $("status-count").textContent =
    `${stats.torrentCount} torrent${stats.torrentCount === 1 ? "" : "s"}, ` +
    `${stats.activeTorrentCount} active`;
}

/* ---------------------------------------------------- the detail view */

let detailId = null;

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  return td;
}

function fillTable(id, items, makeCells, emptyText) {
  const body = $(id).tBodies[0];
  const fragment = document.createDocumentFragment();
  for (const item of items) {
    const tr = document.createElement("tr");
    tr.append(...makeCells(item));
    fragment.append(tr);
  }
  if (items.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(emptyText, "none");
    td.colSpan = $(id).tHead.rows[0].cells.length;
    tr.append(td);
    fragment.append(tr);
  }
  body.replaceChildren(fragment);
}

function lastAnnounce(tracker) {
  if (!tracker.hasAnnounced) {
    return ANNOUNCE_STATES[tracker.announceState] || "Not yet";
  }
  const when = formatDate(tracker.lastAnnounceTime);
  if (tracker.lastAnnounceSucceeded) {
    return `${when}: ${tracker.lastAnnouncePeerCount} peers`;
  }
  return `${when}: ${tracker.lastAnnounceResult || "failed"}`;
}

function renderDetail(t) {
  $("detail").dataset.id = String(t.id);
  $("detail-name").textContent = t.name;
  const info = [
    ["Info hash", t.hashString],
    ["Location", t.downloadDir],
    ["Size", `${formatBytes(t.totalSize)} (${t.pieceCount} pieces of ${formatBytes(t.pieceSize)})`],
    ["Verified", formatBytes(t.haveValid)],
    ["Downloaded", formatBytes(t.downloadedEver)],
    ["Uploaded", formatBytes(t.uploadedEver)],
    ["Failed hash", formatBytes(t.corruptEver)],
    ["Added", formatDate(t.addedDate)],
  ];
  if (t.comment) {
    info.push(["Comment", t.comment]);
  }
  const fragment = document.createDocumentFragment();
  for (const [term, value] of info) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    fragment.append(dt, dd);
  }
  $("detail-info").replaceChildren(fragment);

  const files = (t.files || []).map((file, index) => {
    const stats = (t.fileStats || [])[index] || {};
    return { file: file, wanted: stats.wanted !== false };
  });
  fillTable("detail-files", files, ({ file, wanted }) => [
    cell(file.name, "wrap"),
    cell(formatBytes(file.length)),
    cell(wanted
      ? formatPercent(file.length ? file.bytesCompleted / file.length : 1)
      : "skipped"),
  ], "No files");
  fillTable("detail-peers", t.peers || [], (peer) => [
    cell(`${peer.address}:${peer.port}`),
    cell(peer.clientName, "wrap"),
    cell(formatPercent(peer.progress)),
    cell(formatRate(peer.rateToClient)),
    cell(formatRate(peer.rateToPeer)),
    cell(peer.flagStr),
  ], "No peers connected");
  fillTable("detail-trackers", t.trackerStats || [], (tracker) => [
    cell(String(tracker.tier)),
    cell(tracker.announce, "wrap"),
    cell(lastAnnounce(tracker), "wrap"),
    cell(tracker.seederCount >= 0 ? String(tracker.seederCount) : "?"),
    cell(tracker.leecherCount >= 0 ? String(tracker.leecherCount) : "?"),
  ], "No trackers");
}

async function refreshDetail() {
  const id = detailId;
  const reply = await rpc("torrent-get", { ids: [id], fields: DETAIL_FIELDS });
  if (id !== detailId) {
    return;
  }
  const torrent = (reply.torrents || [])[0];
  if (torrent) {
    renderDetail(torrent);
  } else {
    closeDetail();
  }
}

function openDetail(id) {
  detailId = id;
  $("detail").hidden = false;
  $("detail").dataset.id = String(id);
  $("detail-name").textContent = rows.get(id).querySelector(".name").textContent;
  for (const table of ["detail-files", "detail-peers", "detail-trackers"]) {
    $(table).tBodies[0].replaceChildren();
  }
  $("detail-info").replaceChildren();
  $("detail").scrollIntoView({ block: "start" });
  refreshSoon();
}

function closeDetail() {
  detailId = null;
  $("detail").hidden = true;
  delete $("detail").dataset.id;
}

/* ------------------------------------------------------------ refresh */

let timer = null;
let running = false;
let again = false;

function showConnection(error) {
  const element = $("connection");
  element.hidden = !error;
  element.textContent = error ? `Cannot reach the daemon: ${error.message}` : "";
}

async function refresh() {
  running = true;
  try {
    const list = await rpc("torrent-get", { fields: LIST_FIELDS });
    renderList(list.torrents || []);
    renderStats(await rpc("session-stats"));
    if (detailId !== null) {
      await refreshDetail();
    }
    showConnection(null);
  } catch (error) {
    showConnection(error);
  } finally {
    running = false;
    if (again) {
      again = false;
      refresh();
    } else {
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }
}

/** Refresh now (or right after the refresh under way). */
function refreshSoon() {
  if (running) {
    again = true;
    return;
  }
  clearTimeout(timer);
  refresh();
}

/* ------------------------------------------------------------ actions */

function showNotice(text, isError) {
  const notice = $("notice");
  notice.textContent = text;
  notice.hidden = !text;
  notice.classList.toggle("error", Boolean(isError));
}

async function act(method, args) {
  try {
    await rpc(method, args);
  } catch (error) {
    showNotice(`${method} failed: ${error.message}`, true);
  }
  refreshSoon();
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      resolve(url.slice(url.indexOf(",") + 1));
    };
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function describeAdded(reply, source) {
  if (reply["torrent-added"]) {
    return `Added “${reply["torrent-added"].name}”.`;
  }
  if (reply["torrent-duplicate"]) {
    return `Already there: “${reply["torrent-duplicate"].name}”.`;
  }
  return `Added ${source}.`;
}

async function addTorrents(event) {
  event.preventDefault();
  const fileInput = $("add-file");
  const urlInput = $("add-url");
  const files = Array.from(fileInput.files);
  let url = urlInput.value.trim();
  if (files.length === 0 && !url) {
    showNotice("Choose a .torrent file, or enter a URL or magnet link.", true);
    return;
  }
  if (/^[0-9a-f]{40}$/i.test(url)) {
    url = `magnet:?xt=urn:btih:${url}`;
  }
  const paused = !$("add-start").checked;
  const messages = [];
  let failed = false;
  $("add-button").disabled = true;
  for (const file of files) {
    try {
      const metainfo = await readBase64(file);
      messages.push(describeAdded(await rpc("torrent-add", { metainfo, paused }), file.name));
    } catch (error) {
      failed = true;
      messages.push(`${file.name}: ${error.message}.`);
    }
  }
  if (url) {
    try {
      messages.push(describeAdded(await rpc("torrent-add", { filename: url, paused }), url));
      urlInput.value = "";
    } catch (error) {
      failed = true;
      messages.push(`${url}: ${error.message}.`);
    }
  }
  fileInput.value = "";
  $("add-button").disabled = false;
  showNotice(messages.join(" "), failed);
  refreshSoon();
}

let removeId = null;

function askRemove(id) {
  removeId = id;
  $("remove-name").textContent = rows.get(id).querySelector(".name").textContent;
  $("remove-data").checked = false;
  updateRemoveDialog();
  $("remove-dialog").showModal();
}

function updateRemoveDialog() {
  const deleting = $("remove-data").checked;
  $("remove-warning").hidden = !deleting;
  $("remove-confirm").textContent = deleting ? "Remove and delete data" : "Remove";
  $("remove-confirm").classList.toggle("danger", deleting);
}

function removeDialogClosed() {
  const dialog = $("remove-dialog");
  const id = removeId;
  removeId = null;
  if (dialog.returnValue !== "remove" || id === null) {
    return;
  }
  if (id === detailId) {
    closeDetail();
  }
  act("torrent-remove", { ids: [id], "delete-local-data": $("remove-data").checked });
}

function listClicked(event) {
  const button = event.target.closest("button");
  const row = event.target.closest("li.torrent");
  if (!button || !row) {
    return;
  }
  const id = Number(row.dataset.id);
  if (button.classList.contains("name")) {
    openDetail(id);
  } else if (button.classList.contains("start")) {
    act("torrent-start", { ids: [id] });
  } else if (button.classList.contains("stop")) {
    act("torrent-stop", { ids: [id] });
  } else if (button.classList.contains("verify")) {
    act("torrent-verify", { ids: [id] });
  } else if (button.classList.contains("remove")) {
    askRemove(id);
  }
}

function start() {
  $("add-form").addEventListener("submit", addTorrents);
  $("torrents").addEventListener("click", listClicked);
  $("detail-close").addEventListener("click", closeDetail);
  $("remove-data").addEventListener("change", updateRemoveDialog);
  $("remove-dialog").addEventListener("close", removeDialogClosed);
  refresh();
}

start();
