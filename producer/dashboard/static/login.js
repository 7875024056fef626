"use strict";
// Trades the key for an HttpOnly cookie, so that it never sits in the URL or in the page's script.
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = document.getElementById("key").value.trim();
  const response = await fetch("dashboard/session", { method: "POST", headers: { "X-API-Key": key } });
  if (response.ok) {
    window.location.replace(window.location.pathname);
  } else {
    document.getElementById("error").hidden = false;
  }
});
