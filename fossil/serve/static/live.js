// fossil serve: a running ingest job (GET /ingest): progress, rate and the latest
// references' thumbnails.  Uses app.js's helpers ($, api, el, thumbnailFigure).
"use strict";

const INGEST_ACTIVE = new Set(["queued", "running"]);

function ingestLine(job) {
  const total = job.total || job.captions_given;
  const rate = job.rate.references_per_s.toFixed(2);
  return `ingest ${job.corpus} (job ${job.job}, ${job.state}): ${job.captions_done} of ` +
    `${total} captions, ${job.references_written} references, ${rate} references/s` +
    (job.failed_captions ? `, ${job.failed_captions} failed` : "") +
    (job.revision !== null ? ` · revision ${job.revision}` : "");
}

function showIngest(jobs) {
  const box = $("ingest");
  const job = jobs.find((j) => INGEST_ACTIVE.has(j.state)) || null;
  if (!job) {
    box.hidden = true;
    return false;
  }
  $("ingest-status").textContent = ingestLine(job);
  const bar = $("ingest-progress");
  bar.max = Math.max(job.total || job.captions_given, 1);
  bar.value = job.captions_done;
  const latest = $("ingest-latest");
  latest.replaceChildren(...job.latest.slice().reverse().map((ref) =>
    thumbnailFigure({ ...ref, thumbnail: `/references/${ref.id}/thumbnail` }, "")));
  box.hidden = false;
  return true;
}

async function pollIngest() {
  let active = false;
  try {
    active = showIngest((await api("/ingest")).jobs || []);
  } catch (_) {
    $("ingest").hidden = true; // no key yet, or an older server
  }
  setTimeout(pollIngest, active ? 3000 : 15000);
}

pollIngest();
