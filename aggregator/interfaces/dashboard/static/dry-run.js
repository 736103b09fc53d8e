// The dashboard's one action: POST /api/v1/rebalance (a dry run) with the token typed in; served locally.
"use strict";
document.getElementById("dry-run").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = document.getElementById("dry-run-result");
  const token = event.target.elements.token.value;
  out.textContent = "running…";
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch("/api/v1/rebalance", { method: "POST", headers, body: "{}" });
  const body = await response.json().catch(() => ({}));
  if (response.ok) {
    out.textContent = "proposal " + body.proposal + ": " + body.plan.status + " (reload to see it)";
    out.dataset.proposal = body.proposal;
  } else {
    out.textContent = "refused (HTTP " + response.status + "): " + (body.detail || response.statusText);
  }
  out.dataset.status = String(response.status);
});
