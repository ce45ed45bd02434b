"""The model card drawn from a hand-built facts dict: figures, escaping, gaps and limitations."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from pipelines.registry.model_card import generated_limitations, render_html, render_markdown


def facts() -> dict[str, Any]:
    """A card for a version with every section recorded and no limitation to report."""
    return {
        "model": {
            "name": "business-aid.fraud-risk",
            "version": "3",
            "aliases": ["champion"],
            "registered": "2026-11-29T07:53:09+00:00",
            "run_id": "a142b08261e446158ff57da2b08da856",
            "experiment_id": "1",
            "ui_path": "#/models/business-aid.fraud-risk/versions/3",
        },
        "agency": {"name": "business-aid", "description": "Business authority."},
        "use_case": {
            "name": "fraud-risk",
            "description": "Flag applications for a fraud check before payout.",
            "task": "binary",
            "target": "is_fraud",
            "positive_class": 1,
            "params_source": "training run artifact params/use_case.json",
        },
        "policy": {"kind": "capacity", "top_k": 200, "flag_label": "fraud-check"},
        "data": {
            "datasets": [
                {
                    "name": "training",
                    "dvc_path": "data/ingested/business-aid/applications.parquet",
                    "md5": "9459ad56af83a4aca1c9f5759e4dd446",
                    "dvc_status": "tracked",
                    "dvc_remote": "local",
                    "dvc_remote_url": "/srv/dvc-remote",
                    "source": "data/raw/applications.csv",
                    "rows": "60000",
                }
            ],
            "training_window": {"start": "2020-03-01", "end": "2021-06-30"},
            "split_sizes": {"train": 42000, "validation": 9000, "holdout": 9000},
            "fitting": {
                "trees": 111,
                "trees_chosen_on": "validation (early stopping on log loss)",
                "fitted_on": "train+validation",
                "fitted_rows": 51000,
                "threshold_and_drift_reference_on": "validation",
            },
            "unlabelled": {"rows": 0, "policy": "quarantine", "quarantine": None},
        },
        "metrics": {"roc_auc": 0.836038961038961, "pr_auc": 0.3056443543088358},
        "baselines": {
            "class_prior": {"roc_auc": 0.5, "pr_auc": 0.0466},
            "logistic_regression": {"roc_auc": 0.7712345, "pr_auc": 0.2},
        },
        "slices": {
            "rows": [
                {"column": "region", "group": "north", "rows": 4100, "recall": 0.61},
                {"column": "region", "group": "south", "rows": 4900, "recall": 0.58},
            ],
            "disparity": {"region": 1.0517},
            "notes": {},
            "max_recall_ratio": 1.5,
            "flagged_columns": [],
            "passed": True,
        },
        "calibration": {
            "method": "isotonic",
            "before": {"ece": 0.0412, "brier": 0.0401},
            "after": {"ece": 0.0093, "brier": 0.0387},
        },
        "registry": {
            "gate_decision": "await-approval",
            "gate_reason": "passed the gate; awaiting approval",
            "approval": {"by": "jane.doe", "time": "2026-11-29T08:00:00+00:00", "reason": "ok"},
        },
        "audit": [
            {
                "time": "2026-11-29T07:53:09+00:00",
                "model": "business-aid.fraud-risk",
                "action": "approve",
                "alias": "champion",
                "from_version": "2",
                "to_version": "3",
                "by": "jane.doe",
                "reason": "reviewed the slice table",
                "gate": {"decision": "await-approval", "passed": True},
            }
        ],
        "provenance": {
            "git_commit": "639bd8e0c2f1",
            "git_dirty": "false",
            "params_sha256": "ffb935130220d6c5",
            "model_sha256": "e1fc0ccc6403c4d3",
            "run_id": "a142b08261e446158ff57da2b08da856",
            "validation_result_id": "ValidationResultIdentifier::fraud-risk-training",
        },
        "evaluation_report": "evaluation/report.json",
        "limitations": [],
        "generated_at": "2026-11-30T10:00:00+00:00",
    }


def section(markdown: str, title: str) -> str:
    """The text of one '## title' section."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, flags=re.M | re.S)
    assert found, f"no section '{title}' in:\n{markdown}"
    return found.group(1)


def test_the_real_figures_appear_formatted_in_both_formats() -> None:
    markdown, page = render_markdown(facts()), render_html(facts())

    for text in (markdown, page):
        assert "Model card: business-aid.fraud-risk v3" in text
        assert "0.8360" in text and "0.3056" in text  # the model's metrics, 4 decimals
        assert "0.7712" in text and "0.5000" in text  # the baselines beside them
        assert "9459ad56af83a4aca1c9f5759e4dd446" in text
        assert "2020-03-01 to 2021-06-30" in text
        assert "holdout 9,000" in text
        assert "the train and validation rows (51,000), with 111 trees" in text
        assert "jane.doe" in text and "v2 → v3" in text
        assert "isotonic" in text and "ece 0.0093" in text
        assert "639bd8e0c2f1" in text and "e1fc0ccc6403c4d3" in text
    assert "| roc_auc | 0.8360 | 0.5000 | 0.7712 |" in section(
        markdown, "Metrics against baselines"
    )
    assert "| region | north | 4,100 | 0.6100 |" in section(markdown, "Slices")
    slices = section(markdown, "Slices")
    assert "- **Disparity (recall max/min): region:** 1.0517" in slices
    assert "- **Within limits:** yes" in slices
    assert "- **Largest allowed ratio:** 1.5000" in slices
    assert "- **top_k:** 200" in section(markdown, "Decision policy")
    assert "await-approval (passed)" in section(markdown, "Approvals and audit trail")
    assert "none identified" in section(markdown, "Limitations")
    assert "not recorded" not in markdown


def test_every_section_is_present_in_order() -> None:
    titles = re.findall(r"^## (.+)$", render_markdown(facts()), flags=re.M)
    assert titles == [
        "Intended use and agency",
        "Data",
        "Metrics against baselines",
        "Slices",
        "Calibration",
        "Decision policy",
        "Limitations",
        "Approvals and audit trail",
        "Provenance",
    ]
    assert re.findall(r"<h2>(.+?)</h2>", render_html(facts())) == titles


def test_html_escapes_all_text_and_stays_self_contained() -> None:
    hostile = facts()
    hostile["use_case"]["description"] = "<script>alert('x')</script>"
    hostile["audit"][0]["reason"] = '"><img src=x onerror=alert(1)>'
    hostile["slices"]["rows"][0]["group"] = "<b>north</b>"

    page = render_html(hostile)

    assert "<script>" not in page and "<img" not in page and "<b>north" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<style>" in page and "http" not in page  # no external stylesheet, font or script
    markdown = render_markdown(hostile)
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown


def test_a_pipe_or_newline_in_a_value_cannot_break_a_markdown_table() -> None:
    tricky = facts()
    tricky["audit"][0]["reason"] = "first line\nsecond | column"
    row = next(
        line for line in render_markdown(tricky).splitlines() if line.startswith("| 2026-11-29")
    )
    assert "first line second \\| column" in row
    assert row.count(" | ") == 6  # seven columns, whatever the reason says


@pytest.mark.parametrize(
    ("key", "title", "said"),
    [
        ("slices", "Slices", "Slice metrics: not recorded."),
        ("calibration", "Calibration", "Calibration: not recorded."),
        ("policy", "Decision policy", "Decision policy: not recorded."),
        ("baselines", "Metrics against baselines", "Baselines: not recorded."),
        ("metrics", "Metrics against baselines", "Holdout metrics: not recorded."),
    ],
)
def test_a_missing_section_says_not_recorded(key: str, title: str, said: str) -> None:
    partial = facts()
    del partial[key]
    markdown = render_markdown(partial)
    assert said in section(markdown, title)
    assert said in render_html(partial)


def test_missing_keys_inside_a_section_are_not_recorded_not_errors() -> None:
    sparse = facts()
    sparse["data"] = {"datasets": [{"name": "training"}]}
    sparse["calibration"] = {"method": "sigmoid"}
    sparse["slices"] = {"passed": False}
    sparse["audit"] = []
    del sparse["provenance"]

    markdown = render_markdown(sparse)

    assert "- **Training window:** not recorded" in section(markdown, "Data")
    assert "- **Split sizes (rows):** not recorded" in section(markdown, "Data")
    assert "| training | not recorded |" in section(markdown, "Data")
    assert "- **Before calibration:** not recorded" in section(markdown, "Calibration")
    assert "- **Within limits:** no" in section(markdown, "Slices")
    assert "No approvals recorded" in section(markdown, "Approvals and audit trail")
    assert "- **Git commit:** not recorded" in section(markdown, "Provenance")
    render_html(sparse)


def test_an_empty_facts_dict_still_renders_every_section() -> None:
    markdown = render_markdown({})
    assert markdown.count("\n## ") == 9 and "not recorded" in markdown
    assert "No approvals recorded" in markdown
    assert render_html({}).count("<h2>") == 9


def test_a_report_written_differently_degrades_to_not_recorded() -> None:
    odd = facts()
    odd.update(baselines=[], slices="n/a", calibration=["isotonic"], policy="capacity")
    odd["data"] = {"datasets": ["training"], "split_sizes": [1, 2], "training_window": "2020"}
    odd["metrics"] = {"roc_auc": "0.9", "pr_auc": None}
    odd["audit"] = ["approved", {"action": "promote", "gate": "promote"}]

    markdown = render_markdown(odd)

    assert "| roc_auc | 0.9 | not recorded | not recorded |" in markdown
    assert "Slice metrics: not recorded." in markdown
    assert "Calibration: not recorded." in markdown
    assert "| not recorded | promote | not recorded | none → none |" in markdown
    render_html(odd)


def test_a_clean_record_has_no_generated_limitations() -> None:
    assert generated_limitations(facts()) == []


def test_limitations_follow_from_the_facts() -> None:
    risky = copy.deepcopy(facts())
    risky["data"]["datasets"][0].update(
        source="generator:business-aid?rows=4000&seed=2020", dvc_status="untracked"
    )
    risky["data"]["split_sizes"]["holdout"] = 600
    risky["provenance"]["git_dirty"] = "true"
    risky["slices"].update(flagged_columns=["region"], passed=False)
    risky["calibration"] = {"method": None, "before": None, "after": None}
    risky["limitations"] = ["Not validated for applications after 2021."]

    found = generated_limitations(risky)

    assert len(found) == 7
    text = "\n".join(found)
    assert "synthetic data (generator:business-aid?rows=4000&seed=2020)" in text
    assert "status: untracked" in text
    assert "uncommitted changes (commit 639bd8e0c2f1)" in text
    assert "(region)" in text
    assert "Small holdout (600 rows" in text
    assert "not calibrated" in text
    assert found[-1] == "Not validated for applications after 2021."
    limitations = section(render_markdown(risky), "Limitations")
    assert all(f"- {line}" in limitations for line in found)


def test_limitations_name_what_is_unknown_and_ignore_what_is_unrecorded() -> None:
    unknown = facts()
    unknown["provenance"]["git_commit"] = "unknown"
    del unknown["calibration"]  # not recorded: no claim either way
    unknown["data"]["split_sizes"] = None
    unknown["metrics"]["holdout_rows"] = 600.0  # the holdout size read from the metrics

    found = generated_limitations(unknown)

    assert any("No git commit is recorded" in line for line in found)
    assert any("Small holdout (600 rows" in line for line in found)
    assert not any("calibrated" in line for line in found)


def test_an_undefined_recall_ratio_is_never_within_limits() -> None:
    zero = facts()
    # as older reports recorded it: the ratio null, its note, and passed still true
    zero["slices"]["disparity"]["scheme"] = None
    zero["slices"]["notes"]["scheme"] = (
        "recall 0 in group salary: ratio undefined, not within limits"
    )

    markdown = render_markdown(zero)

    slices = section(markdown, "Slices")
    assert (
        "- **Disparity (recall max/min): scheme:** recall 0 in group salary: ratio undefined, "
        "not within limits"
    ) in slices
    assert "- **Within limits:** no (ratio undefined for scheme)" in slices
    assert "- **Within limits:** yes" not in markdown
    assert generated_limitations(zero) == [
        "Groups of scheme cannot be compared: recall 0 in group salary: ratio undefined, not "
        "within limits."
    ]


def test_a_slice_status_column_shows_groups_that_were_not_judged() -> None:
    judged = facts()
    judged["slices"]["rows"][1].update(status="too few positives", positives=3)

    slices = section(render_markdown(judged), "Slices")

    assert "too few positives" in slices


def test_a_version_that_does_not_beat_its_best_baseline_says_so() -> None:
    weak = facts()
    weak["use_case"]["primary_metric"] = "pr_auc"
    weak["baselines"]["logistic_regression"]["pr_auc"] = 0.3247

    found = generated_limitations(weak)
    metrics = section(render_markdown(weak), "Metrics against baselines")

    assert found == [
        "Does not beat its best baseline: pr_auc 0.3056 does not beat the best baseline, "
        "logistic_regression 0.3247."
    ]
    assert "Primary metric: pr_auc 0.3056 does not beat the best baseline" in metrics
    assert (
        "does not beat its best baseline" in section(render_markdown(weak), "Limitations").lower()
    )


def test_a_lower_is_better_primary_metric_beats_a_baseline_by_being_lower() -> None:
    loss = facts()
    loss["use_case"]["primary_metric"] = "log_loss"
    loss["metrics"]["log_loss"] = 0.12
    loss["baselines"] = {
        "class_prior": {"log_loss": 0.17},
        "logistic_regression": {"log_loss": 0.13},
    }

    assert generated_limitations(loss) == []
    assert (
        "Primary metric: log_loss 0.1200 beats the best baseline, logistic_regression 0.1300."
        in render_markdown(loss)
    )


def test_the_card_says_which_classes_macro_f1_is_over() -> None:
    routing = facts()
    routing["use_case"].update(task="multiclass", primary_metric="macro_f1")
    routing["metrics"] = {"macro_f1": 0.91, "accuracy": 0.93}
    routing["baselines"] = {
        "class_prior": {"macro_f1": 0.18},
        "logistic_regression": {"macro_f1": 0.58},
    }
    routing["classes"] = {
        "present": ["control", "standard"],
        "absent": ["expert", "fast_track"],
        "support": {"control": 98, "expert": 0, "fast_track": 0, "standard": 349},
    }

    markdown = render_markdown(routing)

    metrics = section(markdown, "Metrics against baselines")
    assert (
        "Macro F1 over the 2 classes present in the holdout; absent: expert, fast_track "
        "(no holdout rows)."
    ) in metrics
    assert (
        "- **Holdout rows per class:** control 98, expert 0, fast_track 0, standard 349" in metrics
    )
    assert (
        "No holdout rows for expert, fast_track: how well it predicts those classes is not "
        "measured." in generated_limitations(routing)
    )
    routing["classes"].update(present=["control", "expert", "fast_track", "standard"], absent=[])
    assert "Macro F1 over all 4 classes; each has holdout rows." in render_markdown(routing)
    assert generated_limitations(routing) == []


def test_baselines_recorded_oddly_are_not_compared() -> None:
    odd = facts()
    odd["baselines"] = {"class_prior": "0.5", "logistic_regression": {"roc_auc": "0.9"}}
    odd["metrics"]["roc_auc"] = float("nan")

    markdown = render_markdown(odd)

    assert "Primary metric:" not in markdown
    assert generated_limitations(odd) == []


# --- the version's description in MLflow ------------------------------------------------------


def test_the_description_summarises_verdicts_people_metrics_data_and_code() -> None:
    from pipelines.registry.model_card import render_description

    text = render_description(facts())

    assert text.startswith("**business-aid.fraud-risk v3** (aliases: champion)")
    assert "- Promotion gate: await-approval: passed the gate; awaiting approval" in text
    assert "- Approval: jane.doe at 2026-11-29T08:00:00+00:00: ok" in text
    assert "Rejection" not in text
    assert "(9,000 holdout rows)" in text
    assert "pr_auc 0.3056 (baselines: class prior 0.0466, logistic regression 0.2000)" in text
    assert "md5 9459ad56af83a4aca1c9f5759e4dd446" in text
    assert "data/ingested/business-aid/applications.parquet" in text
    assert "git commit 639bd8e0c2f1;" in text
    assert "model_card/model_card.html" in text and "a142b08261e446158ff57da2b08da856" in text


def test_the_description_says_what_is_missing_and_escapes_what_it_quotes() -> None:
    from pipelines.registry.model_card import render_description

    odd = facts()
    odd["registry"] = {
        "gate_decision": "hold",
        "gate_reason": "<script>x</script> | worse",
        "rejected": {"by": "kim", "time": "2026-11-30T09:00:00+00:00", "reason": "slices"},
    }
    odd["metrics"] = {}
    odd["provenance"] = {}

    text = render_description(odd)

    assert "<script>" not in text and "&lt;script&gt;" in text and "\\| worse" in text
    assert "- Approval: none" in text
    assert "- Rejection: kim at 2026-11-30T09:00:00+00:00: slices" in text
    assert "Holdout metrics (9,000 holdout rows): not recorded" in text
    assert "git commit not recorded" in text


def test_a_decision_reads_from_readable_tags_and_from_the_older_json_tag() -> None:
    from pipelines.registry.model_card import registry_facts

    readable = registry_facts(
        {
            "agencyml.approval.by": "cy",
            "agencyml.approval.reason": "reviewed slices",
            "agencyml.approval.time": "2026-11-30T09:00:00+00:00",
        }
    )
    older = registry_facts(
        {
            "agencyml.approval": '{"by": "cy", "reason": "ok", "time": "t"}',
            "agencyml.rejected": '{"by": "kim", "reason": "no", "time": "t"}',
        }
    )

    assert readable["approval"] == {
        "by": "cy",
        "reason": "reviewed slices",
        "time": "2026-11-30T09:00:00+00:00",
    }
    assert readable["rejected"] is None
    assert older["approval"]["by"] == "cy" and older["rejected"]["reason"] == "no"


def test_the_html_card_embeds_the_plots_it_is_given_with_escaped_titles() -> None:
    import base64

    from pipelines.registry.model_card import render_html

    png = b"\x89PNG\r\n\x1a\n-not-really"
    page = render_html(facts(), {"roc_curve.png": png, "<odd>.png": png})

    assert page.index("<h2>Plots</h2>") > page.index("<h1>")
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page
    assert 'alt="ROC curve on the holdout rows"' in page
    assert "&lt;odd&gt;.png" in page and "<odd>" not in page
    assert page.index("ROC curve") < page.index("&lt;odd&gt;")  # known plots first
    assert "<h2>Plots</h2>" not in render_html(facts())
