// Movie review sentiment: the page's only script. No dependencies, no inline code (the site's
// Content-Security-Policy is script-src 'self'), and nothing a user or a server sends is ever parsed
// as HTML: every text goes through textContent.
"use strict";

(function () {
  // The API takes a body of at most 131072 bytes. The review's limit is counted as it travels
  // (JSON-escaped: a quote or a line break takes two bytes) and leaves room for the JSON around it as
  // the API forwards it, so that a review under it is never refused with 413.
  const MAX_REVIEW_BYTES = 131000;
  const TIMEOUT_MS = 30000;       // API Gateway gives up at 29 s
  const MAX_WORDS_SHOWN = 3000;   // the model reads a few hundred; the rest is only context
  const TOP_N = 5;

  const SAMPLES = [
    {
      name: "A positive review",
      text: "One of the best films I have seen in years. The acting is superb, the story is moving and " +
        "beautifully told, and the ending is perfect. A wonderful, funny and touching movie that I will " +
        "watch again.",
    },
    {
      name: "A negative review",
      text: "A boring, badly written mess. The plot makes no sense, the acting is awful and the jokes " +
        "fall flat. I wanted to walk out after twenty minutes; a complete waste of time and money.",
    },
    {
      name: "A mixed review",
      text: "The photography is gorgeous and the lead gives a strong performance, but the script is " +
        "clumsy and the second half drags. Worth seeing once, if you are patient.",
    },
  ];

  const $ = (id) => document.getElementById(id);
  const form = $("review-form");
  const review = $("review");
  const explain = $("explain");
  const submit = $("submit");
  const byteCount = $("byte-count");
  const status = $("status");
  const errorBox = $("error");
  const errorMessage = $("error-message");
  const result = $("result");
  const label = $("label");
  const scoreText = $("score-text");
  const meter = $("meter");
  const meterRow = $("meter-row");
  const verdict = $("verdict");
  const explanation = $("explanation");
  const words = $("words");
  const topPositive = $("top-positive");
  const topNegative = $("top-negative");

  const encoder = new TextEncoder();
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
  let busy = false;

  // --- config.json: {"apiUrl": "..."}; "" means the page's own origin
  const config = fetch("config.json", { cache: "no-store" })
    .then((r) => {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    })
    .then((c) => {
      if (!c || typeof c.apiUrl !== "string") throw new Error("no apiUrl in it");
      return { predictUrl: c.apiUrl.replace(/\/+$/, "") + "/predict" };
    });
  config.then(() => { document.body.dataset.config = "loaded"; }, () => {});
  const configError = config.then(() => null, (e) =>
    "The page could not read its configuration (config.json: " + e.message + "), so it " +
    "does not know where the API is. Reload the page; if it persists, redeploy the site.");
  configError.then((message) => { if (message) showError(message); });

  // --- helpers
  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function showError(message) {
    status.textContent = "";
    errorMessage.textContent = message;
    errorBox.hidden = false;
    document.body.dataset.state = "error";
  }

  function hideError() {
    errorBox.hidden = true;
    errorMessage.textContent = "";
  }

  function setBusy(on) {
    busy = on;
    submit.disabled = on;
    submit.textContent = on ? "Classifying…" : "Classify";
    result.setAttribute("aria-busy", on ? "true" : "false");
    if (on) status.textContent = "Classifying your review…";
    status.classList.toggle("loading", on);
    if (on) document.body.dataset.state = "loading";
  }

  function reviewBytes(text) {
    return encoder.encode(JSON.stringify(text)).length - 2;  // without the quotes
  }

  function updateByteCount() {
    const n = reviewBytes(review.value);
    byteCount.textContent = n.toLocaleString("en-US") + " / " + MAX_REVIEW_BYTES.toLocaleString("en-US") + " bytes";
    byteCount.classList.toggle("over", n > MAX_REVIEW_BYTES);
  }

  // One decimal; a saturated score is ">99.9%", not a "100%" no model can mean.
  function percent(p) {
    const pct = Math.round(p * 1000) / 10;
    if (pct > 99.9) return ">99.9%";
    if (pct < 0.1) return "<0.1%";
    return pct + "%";
  }

  function short(text, n) {
    text = String(text);
    return text.length > n ? text.slice(0, n) + "…" : text;
  }

  // A weight is the change of the model's log-odds when the word is left out ("+1.3").
  function formatWeight(w) {
    const a = Math.abs(w);
    return (w > 0 ? "+" : w < 0 ? "−" : "±") + (a >= 10 ? a.toFixed(0) : a.toPrecision(2));
  }

  // --- the answer
  function validPrediction(data) {
    return data && typeof data === "object" &&
      (data.label === "positive" || data.label === "negative") &&
      typeof data.score === "number" && isFinite(data.score) && data.score >= 0 && data.score <= 1;
  }

  function errorText(status, data, raw) {
    let message = "";
    if (data && typeof data === "object") {
      if (typeof data.error === "string") message = data.error;
      else if (typeof data.message === "string") message = data.message;  // API Gateway's own errors
    }
    if (!message && raw) message = raw.trim();
    if (!message) message = "no details";
    const kind = status >= 500 ? "The service failed" : "The API refused the review";
    return kind + " (HTTP " + status + "): " + short(message, 400);
  }

  function renderPrediction(data) {
    renderExplanation(Array.isArray(data.explanation) ? data.explanation : null);
    if (data.words_read === 0) {
      // The score is the model's answer to an empty review: no verdict to show.
      label.textContent = "No words read";
      label.className = "label none";
      scoreText.textContent = "The model ignores stop words (“the”, “and”, “it”…), emoji and symbols, " +
        "and this review has nothing else. Write a few words about the film.";
      meterRow.hidden = true;
      status.textContent = "Result: no words read, so no verdict. " + scoreText.textContent;
    } else {
      const positive = data.label === "positive";
      label.textContent = positive ? "Positive" : "Negative";
      label.className = "label " + (positive ? "positive" : "negative");
      const pct = percent(data.score);
      scoreText.textContent = pct + " probability that the review is positive";
      meter.value = data.score;
      meter.textContent = pct;
      meter.setAttribute("aria-valuetext", pct + " positive");
      meterRow.hidden = false;
      // Screen readers hear the outcome through the live status line (visually hidden once loaded).
      status.textContent = "Result: " + label.textContent + ", " + pct + " probability positive.";
    }
    result.hidden = false;
    document.body.dataset.state = "result";
  }

  // On a phone the verdict lands below the fold: scroll to it. Focus follows (screen readers start
  // reading there, Tab continues into the explanation), except after Ctrl+Enter in the text box,
  // where the writer is still writing.
  function bringIntoView(keepFocus) {
    const box = verdict.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) {
      result.scrollIntoView({ block: "start", behavior: reducedMotion.matches ? "auto" : "smooth" });
    }
    if (!keepFocus) result.focus({ preventScroll: true });
  }

  function renderExplanation(items) {
    clear(words);
    clear(topPositive);
    clear(topNegative);
    if (!items || items.length === 0) {
      explanation.hidden = true;
      return;
    }
    const entries = [];
    for (const item of items) {
      if (!item || typeof item !== "object" || typeof item.word !== "string") continue;
      const w = typeof item.weight === "number" && isFinite(item.weight) ? item.weight : null;
      entries.push({ word: item.word, weight: w });
    }
    // Intensity is relative to the strongest word of this review, so that a review where every word
    // matters a little and one where one word decides both show their ranking. A square root spreads
    // the levels so that the second-strongest words still show.
    const maxAbs = entries.reduce((m, e) => (e.weight === null ? m : Math.max(m, Math.abs(e.weight))), 0);
    const floor = Math.max(1e-6, maxAbs * 0.02);  // below this a word did not matter

    const frag = document.createDocumentFragment();
    entries.slice(0, MAX_WORDS_SHOWN).forEach((e, i) => {
      if (i > 0) frag.appendChild(document.createTextNode(" "));
      const span = document.createElement("span");
      span.textContent = e.word;
      let cls = "w ";
      if (e.weight === null) {
        cls += "none";
        span.title = e.word + ": not read";
      } else if (Math.abs(e.weight) < floor) {
        cls += "zero";
        span.title = e.word + ": " + formatWeight(e.weight);
      } else {
        const level = Math.min(4, Math.max(1, Math.ceil(Math.sqrt(Math.abs(e.weight) / maxAbs) * 4)));
        cls += (e.weight > 0 ? "pos-" : "neg-") + level;
        span.title = e.word + ": " + formatWeight(e.weight);
        span.dataset.weight = String(e.weight);
      }
      span.className = cls;
      frag.appendChild(span);
    });
    if (entries.length > MAX_WORDS_SHOWN) {
      const more = document.createElement("span");
      more.className = "more";
      more.textContent = " … and " + (entries.length - MAX_WORDS_SHOWN).toLocaleString("en-US") + " more words";
      frag.appendChild(more);
    }
    words.appendChild(frag);

    const scored = entries.filter((e) => e.weight !== null && Math.abs(e.weight) >= floor);
    fillTop(topPositive, scored.filter((e) => e.weight > 0).sort((a, b) => b.weight - a.weight));
    fillTop(topNegative, scored.filter((e) => e.weight < 0).sort((a, b) => a.weight - b.weight));
    explanation.hidden = false;
  }

  function fillTop(list, entries) {
    const seen = new Set();
    for (const e of entries) {
      if (seen.has(e.word)) continue;
      seen.add(e.word);
      const li = document.createElement("li");
      const word = document.createElement("span");
      word.className = "top-word";
      word.textContent = e.word;
      li.appendChild(word);
      li.appendChild(document.createTextNode(" " + formatWeight(e.weight)));
      list.appendChild(li);
      if (seen.size >= TOP_N) break;
    }
    if (seen.size === 0) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "none";
      list.appendChild(li);
    }
  }

  // --- the request
  async function classify() {
    if (busy) return;
    const fromTextBox = document.activeElement === review;
    hideError();
    const text = review.value;
    if (!text.trim()) {
      result.hidden = true;
      showError("Write or paste a review first.");
      review.focus();
      return;
    }
    const bytes = reviewBytes(text);
    if (bytes > MAX_REVIEW_BYTES) {  // the API would answer 413: say so without sending it
      result.hidden = true;
      showError("Your review is " + bytes.toLocaleString("en-US") + " bytes; the limit is " +
        MAX_REVIEW_BYTES.toLocaleString("en-US") + " (about 20,000 words; the model reads the first few " +
        "hundred). Shorten it by " + (bytes - MAX_REVIEW_BYTES).toLocaleString("en-US") + " bytes.");
      review.focus();
      return;
    }
    let predictUrl;
    try {
      predictUrl = (await config).predictUrl;
    } catch (e) {
      // Shown again: hideError() above took it away, and a click that did nothing must say why.
      showError(await configError);
      return;
    }
    setBusy(true);
    result.hidden = true;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      let response;
      try {
        response = await fetch(predictUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Accept": "application/json" },
          body: JSON.stringify({ text: text, explain: explain.checked }),
          signal: controller.signal,
          cache: "no-store",
        });
      } catch (e) {
        if (e && e.name === "AbortError") {
          showError("The API did not answer within " + TIMEOUT_MS / 1000 + " seconds. The model may be " +
            "starting up; try again in a moment.");
        } else {
          showError("Cannot reach the API (" + predictUrl + "): it may be down or your connection " +
            "may be offline. Try again in a moment.");
        }
        return;
      }
      const raw = await response.text();
      let data = null;
      try {
        data = raw ? JSON.parse(raw) : null;
      } catch (e) {
        data = null;
      }
      if (!response.ok) {
        showError(errorText(response.status, data, data === null ? raw : ""));
        return;
      }
      if (!validPrediction(data)) {
        showError("The API answered, but not with a prediction this page understands (HTTP " +
          response.status + ").");
        return;
      }
      renderPrediction(data);
      bringIntoView(fromTextBox);
    } catch (e) {
      showError(e && e.name === "AbortError"
        ? "The API did not answer within " + TIMEOUT_MS / 1000 + " seconds."
        : "Unexpected error while reading the answer: " + short(e && e.message ? e.message : e, 200));
    } finally {
      clearTimeout(timer);
      setBusy(false);
    }
  }

  // --- wiring
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    classify();
  });
  review.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      classify();
    }
  });
  review.addEventListener("input", updateByteCount);
  if (/Mac|iPhone|iPad/.test(navigator.platform || "")) $("shortcut-key").textContent = "⌘";

  const sampleButtons = $("sample-buttons");
  for (const sample of SAMPLES) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sample";
    button.textContent = sample.name;
    button.addEventListener("click", () => {
      review.value = sample.text;
      updateByteCount();
      classify();
    });
    sampleButtons.appendChild(button);
  }
  updateByteCount();
  document.body.dataset.state = "ready";
})();
