// The call page's player: turn marks on the recording's timeline, click a turn to play from it,
// the playing turn highlighted. Plain JS, no build step.
(function () {
  "use strict";
  const player = document.getElementById("player");
  const timeline = document.getElementById("timeline");
  if (!player || !timeline) return;
  const marks = Array.from(timeline.querySelectorAll(".mark"));
  const rows = Array.from(document.querySelectorAll("tr.turn"));
  const playhead = document.createElement("div");
  playhead.className = "playhead";
  timeline.appendChild(playhead);

  function place() {
    // The file's own length wins over the record's (it is what the player shows).
    const duration = player.duration || parseFloat(timeline.dataset.duration) || 0;
    if (!duration || !isFinite(duration)) return;
    for (const mark of marks) {
      const at = Math.min(parseFloat(mark.dataset.offset) / duration, 1);
      mark.style.left = (at * 100).toFixed(2) + "%";
    }
  }

  function playFrom(seconds) {
    player.currentTime = seconds;
    const playing = player.play();
    if (playing && playing.catch) playing.catch(function () { /* autoplay refused: seeked anyway */ });
  }

  document.addEventListener("click", function (event) {
    const target = event.target.closest("[data-offset]");
    if (target) playFrom(parseFloat(target.dataset.offset));
  });

  timeline.addEventListener("click", function (event) {
    if (event.target !== timeline || !player.duration) return;
    const box = timeline.getBoundingClientRect();
    playFrom(((event.clientX - box.left) / box.width) * player.duration);
  });

  player.addEventListener("loadedmetadata", place);
  player.addEventListener("timeupdate", function () {
    if (player.duration) playhead.style.left = (player.currentTime / player.duration * 100) + "%";
    let current = null;
    for (const row of rows) {
      const button = row.querySelector("[data-offset]");
      if (button && parseFloat(button.dataset.offset) <= player.currentTime) current = row;
    }
    for (const row of rows) row.classList.toggle("playing", row === current);
  });
  place();
})();
