"""The calculator page in a real browser: headless Chromium (the system's, driven by Playwright)
against a real server on a free port with a throwaway SQLite catalog.

Each view is loaded, its inputs changed the way a person would (pick a preset, change the GPU,
type a number and press Enter, the arrow keys on the tabs), and the numbers it drew are read
back from the DOM (the table each chart is drawn from, and the chart's own `data-series`) and
compared with the API's answer to the same request, fetched directly. A shared address must
show the same scenario; a 422 must show beside the field it names. A screenshot of each view is
saved under ``test-artifacts/page/`` (``PAGE_ARTIFACTS_DIR`` to change; gitignored).

Outside CI, a missing browser or Playwright skips these tests with a message; in CI
(``CI=true``) it fails them (``.ci/run`` installs Debian's ``chromium`` when it is missing).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.schemas.budget import MFU_INPUTS, NEEDS_GPU, PLANNER_INPUTS
from service.schemas.inputs import ADAPTER_OPTIONS, MOE_OPTIONS
from tests.test_faults import Server, start_server

pytestmark = pytest.mark.slow  # a real server and a headless browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("PAGE_ARTIFACTS_DIR", ROOT / "test-artifacts" / "page"))
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
GiB = 2**30
TIMEOUT_MS = 30_000  # a view's answer on a busy machine (the cost view plans every GPU type)
MEMORY_PARTS = ["weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes", "cuda_context_bytes"]


def _no_browser(reason: str) -> None:
    message = f"no browser for the page tests ({reason})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI requires it (.ci/run installs chromium)")
    pytest.skip(f"{message}; `apt-get install chromium` (or set CHROMIUM) and `pip install -e '.[dev]'` to run them")


def chromium_path() -> str | None:
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    return next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("page_server"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _no_browser(f"playwright is not installed: {exc}")
    executable = chromium_path()
    if executable is None:
        _no_browser("no chromium on PATH")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh browser context and page; a script error on the page fails the test, and so does a
    request carrying a step-time option no step of its run reads (a mixture's, which the page's dense
    models refuse, or cuda_graphs without LoRA/QLoRA adapters): the API answers those with a 422."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    sent: list[dict] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.method == "POST" and r.post_data else None)
    yield opened
    context.close()
    assert errors == [], errors
    for body in sent:
        tune = body.get("finetune")
        adapters = (isinstance(tune, dict) and tune.get("method", "lora") != "full") or {"lora", "qlora"} & body.keys()
        assert not set(MOE_OPTIONS) & body.keys() and (adapters or not ADAPTER_OPTIONS.keys() & body.keys()), body


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_ready(page, view: str, **expected) -> dict:
    """Wait until ``view`` has drawn the answer to a request holding ``expected`` (top-level
    fields); returns that request body."""
    page.wait_for_function(
        """([view, expected]) => {
            const panel = document.getElementById(view);
            if (panel.dataset.state !== "ready") return false;
            const body = JSON.parse(panel.dataset.request);
            return Object.entries(expected).every(([k, v]) => JSON.stringify(body[k]) === JSON.stringify(v));
        }""",
        arg=[view, expected],
    )
    return json.loads(page.get_attribute(f"#{view}", "data-request"))


def table_rows(page, view: str) -> list[dict]:
    return page.eval_on_selector_all(f"#{view} tbody tr", "rows => rows.map(r => ({...r.dataset, title: r.title}))")


def series(page, view: str) -> dict:
    return json.loads(page.get_attribute(f"#{view} canvas", "data-series"))


def post(server: Server, path: str, body: dict) -> dict:
    response = httpx.post(f"{server.url}{path}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def first_view_ms(browser, server: Server) -> float:
    """From the start of navigation to the first view drawn (page, scripts, the memory answer,
    the chart), in a fresh browser context: nothing cached."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        fresh = context.new_page()
        fresh.goto(f"{server.url}/")
        wait_ready(fresh, "fit")
        return fresh.evaluate("performance.getEntriesByName('first-view')[0].startTime")
    finally:
        context.close()


def test_the_first_view_is_usable_within_a_second(page, browser, server: Server) -> None:
    # Three cold loads; the fastest must be under a second. What the page itself needs (its
    # assets, one API round trip, the drawing) is in every load, so a slower page fails all
    # three; a busy shared machine (other test suites on the same cores) only slows some. All
    # three are written to first-view.json beside the screenshots.
    loads = [first_view_ms(browser, server) for _ in range(3)]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "first-view.json").write_text(json.dumps({"first_view_ms": loads}), encoding="utf-8")
    assert min(loads) < 1000, f"first view after {', '.join(f'{ms:.0f}' for ms in loads)} ms"
    page.goto(f"{server.url}/")
    wait_ready(page, "fit")
    assert page.get_attribute("#tab-fit", "aria-selected") == "true"
    assert len(series(page, "fit")["datasets"]) == len(MEMORY_PARTS) and page.is_enabled("#model")
    # the pickers get the whole catalog (asked for beside the first view, not before it)
    page.wait_for_function(
        "document.querySelectorAll('#model option').length >= 20 && document.querySelectorAll('#gpu option').length >= 10"
    )
    assert page.input_value("#model") == "llama-3-8b" and page.input_value("#gpu") == "h100-sxm"
    screenshot(page, "fit")


def test_fit_view_draws_the_api_answer_for_a_picked_preset_and_gpu(page, server: Server) -> None:
    page.goto(f"{server.url}/")
    wait_ready(page, "fit")
    page.select_option("#model", "llama-2-13b")
    wait_ready(page, "fit", model={"preset": "llama-2-13b"})
    page.select_option("#gpu", "a100-40gb-sxm")
    body = wait_ready(page, "fit", model={"preset": "llama-2-13b"}, gpu="a100-40gb-sxm")
    answer = post(server, "/v1/memory/training", body)
    gpu = httpx.get(f"{server.url}/v1/gpus/a100-40gb-sxm").json()

    rows = table_rows(page, "fit")
    first = rows[0]
    assert first["label"] == "this setup"
    assert int(first["weightsBytes"]) == answer["per_gpu"]["weights_bytes"]
    assert int(first["gradientsBytes"]) == answer["per_gpu"]["gradients_bytes"]
    assert int(first["optimizerBytes"]) == answer["per_gpu"]["optimizer_bytes"]
    assert int(first["activationsBytes"]) == answer["per_gpu"]["activations_bytes"]
    assert int(first["totalBytes"]) == answer["per_gpu"]["total_bytes"]
    assert int(first["cudaContextBytes"]) == answer["per_gpu"]["cuda_context_bytes"] > 0
    assert int(first["deviceTotalBytes"]) == answer["per_gpu"]["device_total_bytes"]
    assert int(first["gpuMemoryBytes"]) == answer["gpu_memory_bytes"] == gpu["memory_bytes"]
    drawn = series(page, "fit")
    assert [d["label"] for d in drawn["datasets"]] == ["weights", "gradients", "optimizer states", "activations", "CUDA context"]
    for dataset, key in zip(drawn["datasets"], MEMORY_PARTS, strict=True):
        assert dataset["data"][0] == pytest.approx(answer["per_gpu"][key] / GiB, rel=1e-12)

    # 13B parameters with AdamW on 40 GiB cards at ZeRO-1 over 8: 16 bytes a parameter, mostly unsharded
    assert answer["fits"] is False and first["fits"] == "false"
    assert "Does not fit" in page.text_content("#fit .status")
    advice = rows[1:]
    assert advice and page.locator("#fit .advice li").count() == len(advice)
    for row in advice:  # every change offered fits, and saves memory
        assert (
            row["fits"] == "true"
            and int(row["deviceTotalBytes"]) <= gpu["memory_bytes"] < answer["per_gpu"]["device_total_bytes"]
        )
    assert len(drawn["labels"]) == len(rows)
    screenshot(page, "fit-does-not-fit")

    # applying the first change gives the setup it promised, now checked by the API as the setup itself
    page.focus("#fit .advice li button >> nth=0")
    page.keyboard.press("Enter")  # from the keyboard
    applied = wait_ready(page, "fit")
    assert page.evaluate("document.activeElement.matches('#fit .status')")
    assert applied != body
    again = post(server, "/v1/memory/training", applied)
    assert again["fits"] is True and again["per_gpu"]["total_bytes"] == int(advice[0]["totalBytes"])
    assert "Fits" in page.text_content("#fit .status")


def test_fit_view_fine_tunes_with_lora_and_qlora(page, server: Server) -> None:
    # "can I fine-tune this model on my GPU?": QLoRA on one 24 GB card, sent as the API's finetune
    # object (full training sends none), its numbers drawn as the API gives them
    page.goto(f"{server.url}/?model=llama-3.1-8b&gpu=rtx-4090&seq_len=2048&dp=1&recompute=full&zero_stage=0")
    body = wait_ready(page, "fit", model={"preset": "llama-3.1-8b"}, gpu="rtx-4090")
    assert "finetune" not in body
    assert page.text_content("#fit .status").startswith("Does not fit")  # 8B with AdamW: 16 bytes a parameter
    advice = [row["label"] for row in table_rows(page, "fit")[1:]]
    assert "QLoRA (4-bit base)" in advice  # offered because it fits
    page.select_option("#finetune", "qlora")
    body = wait_ready(page, "fit", finetune={"method": "qlora", "r": 16})
    answer = post(server, "/v1/memory/training", body)
    first = table_rows(page, "fit")[0]
    assert int(first["weightsBytes"]) == answer["per_gpu"]["weights_bytes"]
    assert int(first["deviceTotalBytes"]) == answer["per_gpu"]["device_total_bytes"] <= 24 * 2**30
    assert answer["fits"] is True and answer["finetune"]["method"] == "qlora"
    status = page.text_content("#fit .status")
    assert status.startswith("Fits") and "QLoRA" in status and "trainable parameters" in status
    assert "finetune=qlora" in page.url and "lora_r=16" in page.url  # the scenario is in the address
    screenshot(page, "fit-qlora")
    page.fill("#lora_r", "0")  # a rank the API refuses: the message shows beside the rank
    page.press("#lora_r", "Enter")
    page.wait_for_selector("#fit[data-state=error]")
    assert page.is_visible("#lora_r-error")


def test_cost_view_sorts_the_api_rows_and_shows_each_price_on_hover(page, server: Server) -> None:
    page.goto(f"{server.url}/")
    wait_ready(page, "fit")
    page.focus("#tab-fit")
    page.keyboard.press("ArrowRight")  # the tabs work from the keyboard
    assert page.get_attribute("#tab-cost", "aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "tab-cost"
    body = wait_ready(page, "cost")
    assert body["model"] == {"preset": "llama-3-8b"} and body["sort_by"] == "cost"
    answer = post(server, "/v1/cost/compare", body)
    prices = httpx.get(f"{server.url}/v1/prices", params={"latest": "true", "limit": 100}).json()["items"]
    source = {(p["gpu_id"], p["provider_id"], p["pricing"]): p["source"] for p in prices}

    rows = table_rows(page, "cost")
    assert [(r["gpu"], r["provider"]) for r in rows] == [(r["gpu"], r["provider"]) for r in answer["rows"]]
    for shown, row in zip(rows, answer["rows"], strict=True):
        if row["cost_usd"] is not None:
            assert float(shown["costUsd"]) == pytest.approx(row["cost_usd"], rel=1e-12)
            assert float(shown["wallClockHours"]) == pytest.approx(row["wall_clock_hours"], rel=1e-12)
        assert shown["asOf"] == row["as_of"] and row["as_of"] in shown["title"]
        assert source[(row["gpu"], row["provider"], row["pricing"])] in shown["title"]
    priced = [r for r in answer["rows"] if r["cost_usd"] is not None and r["fits"] is not False]
    drawn = series(page, "cost")
    assert drawn["labels"] == [f"{r['gpu']} · {r['provider']}" for r in priced]
    assert drawn["datasets"][0]["data"] == pytest.approx([r["cost_usd"] for r in priced], rel=1e-12)
    assert drawn["datasets"][0]["data"] == sorted(drawn["datasets"][0]["data"])

    # hovering the cheapest bar shows its price's date and source in the chart's tooltip
    bar = page.evaluate(
        "() => { const c = document.querySelector('#cost canvas'); const b = Chart.getChart(c).getDatasetMeta(0).data[0];"
        " const r = c.getBoundingClientRect(); return {x: r.left + b.x - 5, y: r.top + b.y}; }"
    )
    page.mouse.move(bar["x"], bar["y"])
    page.wait_for_function("() => Chart.getChart(document.querySelector('#cost canvas')).tooltip.opacity > 0")
    tooltip = page.evaluate("() => Chart.getChart(document.querySelector('#cost canvas')).tooltip.afterBody.join('\\n')")
    cheapest = priced[0]
    assert cheapest["as_of"] in tooltip and source[(cheapest["gpu"], cheapest["provider"], cheapest["pricing"])] in tooltip
    screenshot(page, "cost")


def test_budget_view_draws_the_isoflop_curve_with_its_optimum(page, server: Server) -> None:
    answered: list[tuple[str, int, str | None]] = []  # every budget request the page sends: path, status, body
    page.on("response", lambda r: answered.append((r.url, r.status, r.request.post_data)) if "/v1/budget" in r.url else None)
    page.goto(f"{server.url}/?view=budget&budget_usd=2000000")
    body = wait_ready(page, "budget", budget_usd=2000000)
    assert body["scaling_law"] == "hoffmann2022"
    optimum = post(server, "/v1/budget", body)
    rows = table_rows(page, "budget")
    best = [r for r in rows if r["kind"] == "compute-optimal"]
    assert len(best) == 1
    assert float(best[0]["params"]) == optimum["params"] and float(best[0]["loss"]) == pytest.approx(
        optimum["predicted_loss"], rel=1e-12
    )
    drawn = series(page, "budget")
    assert drawn["datasets"][1]["data"] == [{"x": optimum["params"], "y": pytest.approx(optimum["predicted_loss"], rel=1e-12)}]

    curve = [r for r in rows if r["kind"] == "IsoFLOP curve"]
    assert len(curve) == 20 and len(drawn["datasets"][0]["data"]) == 21  # the curve passes through the optimum
    for row in curve:  # each point is the API's loss for that size at the same compute, and none beats the optimum
        at = post(
            server,
            "/v1/budget",
            {"compute_flops": optimum["compute_flops"], "n_params": float(row["params"]), "scaling_law": "hoffmann2022"},
        )
        assert float(row["loss"]) == pytest.approx(at["predicted_loss"], rel=1e-12)
        assert float(row["tokens"]) == pytest.approx(at["tokens"], rel=1e-12)
        assert at["predicted_loss"] > optimum["predicted_loss"]

    # over-trained alternatives: smaller models on more tokens, a little more loss for the same compute
    over = [r for r in rows if r["kind"] == "over-trained"]
    assert [float(r["tokensPerParam"]) for r in over] == pytest.approx([100, 300, 1000, 1875], rel=1e-9)
    for row in over:
        assert float(row["params"]) < optimum["params"] and float(row["loss"]) > optimum["predicted_loss"]

    # the plan behind the answer: the page's n_gpus, the API's layout, MFU and days
    assert optimum["time_from"] == "plan" and optimum["n_gpus"] == body["n_gpus"]
    behind = page.locator("#budget .plan-behind")
    assert float(behind.get_attribute("data-mfu")) == pytest.approx(optimum["mfu"], rel=1e-12)
    assert float(behind.get_attribute("data-days")) == pytest.approx(optimum["wall_clock_days"], rel=1e-12)
    text = behind.inner_text()
    assert f"tp={optimum['plan']['tp']} pp={optimum['plan']['pp']}" in text and "MFU" in text
    assert drawn["datasets"][3]["data"] == [
        {"x": a["params"], "y": pytest.approx(a["predicted_loss"], rel=1e-12)} for a in optimum["alternatives"]
    ]
    # the lifetime choice at the optimum's loss, in dollars: the API's FLOP- and dollar-optimal sizes
    page.wait_for_function("() => document.querySelector('#budget .lifetime').dataset.usdSaved !== ''")
    life = post(server, "/v1/budget/lifetime", {"target_loss": optimum["predicted_loss"], "inference_tokens": 1e13,
                                                "gpu": body["gpu"], "n_gpus": body["n_gpus"], "scaling_law": "hoffmann2022"})  # fmt: skip
    shown = page.locator("#budget .lifetime")
    assert float(shown.get_attribute("data-flop-params")) == life["flop_optimal"]["params"]
    assert float(shown.get_attribute("data-dollar-params")) == life["dollar_optimal"]["params"]
    assert float(shown.get_attribute("data-usd-saved")) == pytest.approx(life["usd_saved"], rel=1e-12)
    assert "dollar-optimal" in shown.inner_text()
    # the page never sends an input that needs a GPU type without one, nor the planner's without it (a 422)
    assert len(answered) == 1 + 20 + 4 + 1 and {status for _, status, _ in answered} == {200}, answered
    for _, _, sent in answered:
        body = json.loads(sent or "{}")
        assert body.get("gpu") or not NEEDS_GPU.keys() & body.keys(), body
        planner = body.get("gpu") and body.get("n_gpus") and not body.get("mfu")  # nor an input the answer would not read
        assert not (MFU_INPUTS.keys() if planner else set(PLANNER_INPUTS)) & body.keys(), body
    screenshot(page, "budget")


def test_plan_view_draws_the_ranked_plans_step_time_breakdown(page, server: Server) -> None:
    page.goto(f"{server.url}/?view=plan")
    body = wait_ready(page, "plan")
    answer = post(server, "/v1/plan", body)
    rows = table_rows(page, "plan")
    assert len(rows) == len(answer["plans"]) > 1
    for shown, plan in zip(rows, answer["plans"], strict=True):
        assert (int(shown["tp"]), int(shown["pp"]), int(shown["dp"]), int(shown["zeroStage"])) == (
            plan["tp"],
            plan["pp"],
            plan["dp"],
            plan["zero_stage"],
        )
        assert float(shown["stepTimeSeconds"]) == pytest.approx(plan["step_time_seconds"], rel=1e-12)
        assert float(shown["computeSeconds"]) == pytest.approx(plan["step_time"]["compute_seconds"], rel=1e-12)
    drawn = series(page, "plan")
    for i, plan in enumerate(answer["plans"]):  # the stacked parts add up to the step time
        assert sum(d["data"][i] for d in drawn["datasets"]) == pytest.approx(plan["step_time_seconds"], rel=1e-9)
    assert "finetune" not in body  # pre-training sends no fine-tune
    screenshot(page, "plan")

    # a LoRA fine-tune from the address: the planner lays out the frozen base with its adapters
    page.goto(f"{server.url}/?view=plan&plan_finetune=lora&plan_lora_r=32")
    body = wait_ready(page, "plan", finetune={"method": "lora", "r": 32})
    answer = post(server, "/v1/plan", body)
    rows = table_rows(page, "plan")
    assert [float(r["stepTimeSeconds"]) for r in rows] == pytest.approx(
        [p["step_time_seconds"] for p in answer["plans"]], rel=1e-12
    )
    assert (answer["assumptions"]["finetune"], answer["assumptions"]["finetune_rank"]) == ("lora", 32)


def test_a_shared_address_opens_the_same_scenario(page, browser, server: Server) -> None:
    page.goto(f"{server.url}/")
    wait_ready(page, "fit")
    page.select_option("#model", "mistral-7b")
    page.select_option("#gpu", "h200-sxm")
    page.select_option("#recompute", "selective")
    page.fill("#tp", "2")
    page.press("#tp", "Enter")
    fit_request = wait_ready(page, "fit", model={"preset": "mistral-7b"}, gpu="h200-sxm", recompute="selective")
    assert fit_request["parallelism"]["tp"] == 2
    fit_rows = table_rows(page, "fit")
    page.click("#tab-plan")
    page.fill("#global_batch_size", "256")
    page.press("#global_batch_size", "Enter")
    plan_request = wait_ready(page, "plan", global_batch_size=256)
    plan_rows = table_rows(page, "plan")
    address = page.url
    assert "view=plan" in address and "model=mistral-7b" in address and "tp=2" in address

    other = browser.new_context(viewport={"width": 1000, "height": 800})
    try:
        shared = other.new_page()
        shared.goto(address)
        assert wait_ready(shared, "plan", global_batch_size=256) == plan_request
        assert shared.get_attribute("#tab-plan", "aria-selected") == "true"
        assert table_rows(shared, "plan") == plan_rows
        shared.click("#tab-fit")
        assert wait_ready(shared, "fit") == fit_request
        assert table_rows(shared, "fit") == fit_rows
        assert shared.input_value("#tp") == "2" and shared.input_value("#recompute") == "selective"
    finally:
        other.close()


def test_api_errors_show_beside_the_field_they_name(page, server: Server) -> None:
    page.goto(f"{server.url}/")
    wait_ready(page, "fit")
    page.fill("#seq_len", "0")
    page.press("#seq_len", "Enter")
    page.wait_for_selector("#fit[data-state=error]")
    assert page.is_visible("#seq_len-error")
    assert "greater than or equal to 1" in page.text_content("#seq_len-error")
    assert page.get_attribute("#seq_len", "aria-invalid") == "true"
    assert page.get_attribute("#seq_len", "aria-describedby") == "seq_len-error"

    page.fill("#seq_len", "4096")
    page.fill("#tp", "3")  # a domain error: 3 does not divide the 32 heads
    page.press("#tp", "Enter")
    page.wait_for_selector("#fit[data-state=error]")
    assert "must divide" in page.text_content("#tp-error")
    assert table_rows(page, "fit") == [], "the answer to the earlier inputs is no longer shown"
    assert not page.is_visible("#seq_len-error") and page.get_attribute("#seq_len", "aria-invalid") is None
    screenshot(page, "fit-error")

    page.fill("#tp", "1")
    page.press("#tp", "Enter")
    wait_ready(page, "fit")
    assert not page.is_visible("#tp-error")

    # an address naming a preset the catalog lacks: the API's answer shows beside the model picker
    page.goto(f"{server.url}/?model=no-such-model")
    page.wait_for_selector("#fit[data-state=error]")
    assert "unknown preset 'no-such-model'" in page.text_content("#model-error")
    assert page.input_value("#model") == "no-such-model"

    # a field this view does not show (the plan's precision, on the fit view's form): the message
    # goes to the view's status line, not beside a hidden field
    page.goto(f"{server.url}/?view=plan&gpu=v100-32gb-sxm")
    page.wait_for_selector("#plan[data-state=error]")
    assert "precision: the catalog has no dense bf16 peak for v100-32gb-sxm" in page.text_content("#plan .status")
    assert page.locator(".field-error:not([hidden])").count() == 0


def test_the_page_fits_a_phone(browser, server: Server) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        phone = context.new_page()
        phone.goto(f"{server.url}/")
        wait_ready(phone, "fit")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling on a phone"
        for view in ("fit", "cost", "budget", "plan", "serve", "mixed"):
            assert phone.is_visible(f"#tab-{view}")
        box = phone.locator("#fit canvas").bounding_box()
        assert box and box["width"] <= 390 and box["height"] > 150
        screenshot(phone, "fit-phone")
    finally:
        context.close()


def test_serve_view_compares_gpu_types_at_the_users_load(page, server: Server) -> None:
    page.goto(f"{server.url}/?view=serve&model=llama-3-8b&concurrent_users=32&serve_gpus=h100-sxm,a100-80gb-sxm,l40s")
    body = wait_ready(page, "serve", concurrent_users=32)
    assert body["gpu"] == ["h100-sxm", "a100-80gb-sxm", "l40s"] and "max_time_per_output_token_seconds" not in body
    answer = post(server, "/v1/plan/serving", body)
    rows = table_rows(page, "serve")
    assert [r["gpu"] for r in rows] == [o["gpu"] for o in answer["options"]]
    for row, option in zip(rows, answer["options"], strict=True):
        if option["fits"]:
            assert float(row["usdPerMillionOutputTokens"]) == pytest.approx(option["usd_per_million_output_tokens"], rel=1e-12)
            assert float(row["timeToFirstTokenSeconds"]) == pytest.approx(option["time_to_first_token_seconds"], rel=1e-12)
            assert int(row["tp"]) == option["tp"] and int(row["replicas"]) == option["replicas"]
    drawn = series(page, "serve")
    priced = [o for o in answer["options"] if o["fits"] and o["usd_per_million_output_tokens"] is not None]
    assert drawn["datasets"][0]["data"] == pytest.approx([o["usd_per_million_output_tokens"] for o in priced], rel=1e-12)
    assert priced[0]["gpu"] in page.text_content("#serve .status")

    # a latency bound in the address is sent, and the answer follows it
    page.goto(f"{server.url}/?view=serve&model=llama-3-8b&concurrent_users=32&serve_gpus=h100-sxm&max_tpot=0.02")
    body = wait_ready(page, "serve", max_time_per_output_token_seconds=0.02)
    bounded = post(server, "/v1/plan/serving", body)["options"][0]
    assert bounded["time_per_output_token_seconds"] <= 0.02
    screenshot(page, "serve")


def test_serve_view_states_the_price_behind_each_dollar_figure(page, server: Server) -> None:
    """The $/M tokens rest on a catalog price: each option shows its provider, $/GPU-h and the
    price's as-of date (and its source on hover), as the cost view does."""
    page.goto(f"{server.url}/?view=serve&model=llama-3-8b&concurrent_users=32&serve_gpus=h100-sxm,a100-80gb-sxm,l40s")
    body = wait_ready(page, "serve", concurrent_users=32)
    answer = post(server, "/v1/plan/serving", body)
    rows = table_rows(page, "serve")
    priced = [(row, o) for row, o in zip(rows, answer["options"], strict=True) if o["price"] is not None]
    assert priced, "the catalog prices every GPU type asked for"
    for row, option in priced:
        price = option["price"]
        assert (row["provider"], row["asOf"]) == (price["provider"], price["as_of"])
        assert float(row["usdPerGpuHour"]) == price["usd_per_gpu_hour"]
        assert price["as_of"] in row["title"] and price["source"] in row["title"]
    headers = page.eval_on_selector_all("#serve thead th", "cells => cells.map(c => c.textContent)")
    assert "price as of" in headers
    cells = page.eval_on_selector_all("#serve tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    column = headers.index("price as of")
    assert [cells[i][column] for i, (_, o) in enumerate(zip(rows, answer["options"], strict=True)) if o["price"]] == [
        o["price"]["as_of"] for o in answer["options"] if o["price"]
    ]
    best = next(o for o in answer["options"] if o["fits"] and o["usd_per_million_output_tokens"] is not None)
    status = page.text_content("#serve .status")
    assert f"as of {best['price']['as_of']}" in status and best["price"]["provider"] in status


def test_an_error_shows_beside_the_field_of_the_open_view(page, server: Server) -> None:
    """A field two views send under one API name (the serve view's GPU list and the scenario's GPU
    picker both send `gpu`; the mixed view's batch and the plan view's both `global_batch_size`)
    gets the API's message beside the input the open view sent it from."""
    page.goto(f"{server.url}/?view=serve&serve_gpus=h100-sxm,no-such-gpu")
    page.wait_for_selector("#serve[data-state=error]")
    assert page.is_visible("#serve_gpus-error")
    assert "unknown GPU 'no-such-gpu'" in page.text_content("#serve_gpus-error")
    assert page.get_attribute("#serve_gpus", "aria-invalid") == "true"
    assert not page.is_visible("#gpu-error") and page.get_attribute("#gpu", "aria-invalid") is None

    page.goto(f"{server.url}/?view=mixed&mixed_batch=0")
    page.wait_for_selector("#mixed[data-state=error]")
    assert "greater than or equal to 1" in page.text_content("#mixed_batch-error")
    assert page.get_attribute("#mixed_batch", "aria-invalid") == "true"

    # a field of the shared scenario still gets its message beside it from every view
    page.goto(f"{server.url}/?view=serve&model=no-such-model")
    page.wait_for_selector("#serve[data-state=error]")
    assert "unknown preset 'no-such-model'" in page.text_content("#model-error")


def test_mixed_view_draws_the_stages_across_gpu_types_beside_the_best_single_pool(page, server: Server) -> None:
    page.goto(f"{server.url}/?view=mixed&model=llama-3-70b&seq_len=4096&pool_a_n=64&pool_b_n=256")
    body = wait_ready(page, "mixed")
    assert body["pools"] == [{"gpu": "h100-sxm", "n_gpus": 64}, {"gpu": "a100-80gb-sxm", "n_gpus": 256}]
    answer = post(server, "/v1/plan", body)
    best, single = answer["plans"][0], answer["best_homogeneous"]
    assert best["stages"] and single is not None and best["step_time_seconds"] < single["step_time_seconds"]
    rows = table_rows(page, "mixed")
    assert [(r["gpu"], int(r["nGpus"]), int(r["layers"])) for r in rows[:-1]] == [
        (st["gpu"], st["n_gpus"], st["layers"]) for st in best["stages"]
    ]
    assert rows[-1]["gpu"] == single["gpu"] and float(rows[-1]["stepTimeSeconds"]) == pytest.approx(single["step_time_seconds"])
    drawn = series(page, "mixed")
    for i, stage in enumerate(best["stages"]):  # each stage's stacked parts add up to the plan's step
        assert sum(d["data"][i] for d in drawn["datasets"]) == pytest.approx(best["step_time_seconds"], rel=1e-9), stage
    assert "stages over" in page.text_content("#mixed .status")
    screenshot(page, "mixed")
