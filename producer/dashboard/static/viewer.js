// The before/after viewer: a modal dialog with large previews of one image's input and output,
// compared with a slider (or one at a time), its saved matte as an overlay when there is one,
// and the previous and next image of the table's page.

const viewer = { images: [], index: 0, opener: null };

function show(index) {
  viewer.index = index;
  const image = viewer.images[index];
  const large = (url) => (url ? `${url}?size=large` : "");
  const stage = document.getElementById("stage");
  const before = document.getElementById("before");
  const after = document.getElementById("after");
  const matte = document.getElementById("matte");
  const name = image.key || image.input;
  before.src = large(image.previews.input);
  before.alt = `Before: ${name}`;
  after.src = large(image.previews.output);
  after.alt = image.previews.output ? `After: ${name}` : "";
  after.hidden = !image.previews.output;
  matte.src = large(image.previews.matte);
  document.getElementById("matte-choice").hidden = !image.previews.matte;
  overlay();
  stage.dataset.output = image.previews.output ? "yes" : "no";
  document.getElementById("viewer-title").textContent = name;
  const caption = image.state === "failed" ? `Failed: ${image.error}`
    : image.output ? `Output: ${image.output}` : `State: ${image.state}`;
  document.getElementById("viewer-caption").textContent = caption;
  document.getElementById("viewer-prev").disabled = index === 0;
  document.getElementById("viewer-next").disabled = index === viewer.images.length - 1;
}

function overlay() {
  const wanted = document.getElementById("matte-overlay").checked;
  const image = viewer.images[viewer.index];
  document.getElementById("matte").hidden = !(wanted && image && image.previews.matte);
}

function mode() {
  const chosen = document.querySelector('input[name="mode"]:checked').value;
  document.getElementById("stage").dataset.mode = chosen;
  document.getElementById("split-label").hidden = chosen !== "compare";
}

function split() {
  const at = Number(document.getElementById("split").value);
  document.getElementById("after").style.clipPath = `inset(0 0 0 ${at}%)`;
  document.getElementById("stage").style.setProperty("--split", `${at}%`);
}

export function openViewer(images, index, opener) {
  viewer.images = images;
  viewer.opener = opener;
  show(index);
  mode();
  split();
  document.getElementById("viewer").showModal();
}

function close() {
  document.getElementById("viewer").close();
}

function wire() {
  const dialog = document.getElementById("viewer");
  document.getElementById("viewer-close").addEventListener("click", close);
  document.getElementById("viewer-prev").addEventListener("click", () => show(viewer.index - 1));
  document.getElementById("viewer-next").addEventListener("click", () => show(viewer.index + 1));
  document.getElementById("split").addEventListener("input", split);
  document.getElementById("matte-overlay").addEventListener("change", overlay);
  for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", mode);
  dialog.addEventListener("close", () => { if (viewer.opener) viewer.opener.focus(); });
}

wire();
