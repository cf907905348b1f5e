"""The runner pods' deadline follows --timeout, so a killed client's pods do not linger."""

from __future__ import annotations

from kubectl_gadget.cluster.cli import runner_settings

VALUES = {"gadget_namespace": "gadget", "runner_image": "img", "image_pull_policy": "Never",
          "pull_secrets": ("s",), "privileged": False, "tolerate_taints": True,
          "startup_timeout": 120.0, "runner_deadline": 3600}


def test_without_timeout_the_runner_deadline_applies() -> None:
    assert runner_settings(VALUES).deadline_seconds == 3600


def test_a_timeout_shrinks_the_deadline_to_what_the_run_needs() -> None:
    assert runner_settings(VALUES, timeout=30).deadline_seconds == 30 + 120 + 60


def test_an_explicit_shorter_deadline_wins_over_the_timeout() -> None:
    assert runner_settings({**VALUES, "runner_deadline": 100}, timeout=600).deadline_seconds == 100


def test_other_settings_are_carried_over() -> None:
    s = runner_settings(VALUES, timeout=5)
    assert (s.namespace, s.image, s.pull_policy, s.pull_secrets) == ("gadget", "img", "Never",
                                                                      ("s",))
