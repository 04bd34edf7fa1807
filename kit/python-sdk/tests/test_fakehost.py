"""The fake host against the host's own rules (crates/rollout/src/host.rs, sim.rs):
`cd kit/python-sdk && python3 -m unittest discover -s tests`."""

import unittest

from warship_plugin.testing import ContractError, End, Err, FakeHost, types as t


def step(action, index=1, memory="", description="d"):
    return t.Step(action=action, step_index=index, description=description, memory=memory)


def scale(stable, candidate):
    return t.Action_Scale(t.ScaleTo(stable=stable, candidate=candidate))


def blue_green(settings, s):
    """Start all new pods beside the old, wait, done."""
    if s.candidate.replicas != s.desired_replicas:
        return step(scale(s.stable.replicas if s.stable else 0, s.desired_replicas))
    if s.candidate.ready != s.candidate.replicas:
        return step(t.Action_WaitReady())
    return step(t.Action_Done())


class Told(list):
    """A strategy that records what it was told, then answers as `answer` does."""

    def __init__(self, answer):
        super().__init__()
        self.answer = answer

    def __call__(self, settings, state):
        self.append(state)
        return self.answer(settings, state)


class Basics(unittest.TestCase):
    def test_a_rollout_over_a_stable_release(self):
        told = Told(blue_green)
        host = FakeHost(told, desired=3, stable=3, settings={"a": 1})
        self.assertEqual(host.run(), End("done"))
        self.assertEqual(host.kinds(), ["scale", "wait-ready", "done"])
        first = told[0]
        self.assertEqual((first.step_index, first.memory, first.traffic), (0, "", t.Traffic.STABLE))
        self.assertEqual(first.stable, t.Workload(replicas=3, ready=3, restarts=0, unready_ms=0))
        # One pod starts per simulated second: the wait lasted 3 s, all in step 1.
        self.assertEqual((told[-1].step_index, told[-1].time_in_step_ms), (1, 3000))
        self.assertEqual(host.counts(), ((0, 0), (3, 3)))
        self.assertEqual(host.cluster.traffic, t.Traffic.CANDIDATE)
        self.assertEqual(host.min_serving, 3)

    def test_a_first_deploy_starts_on_the_candidate(self):
        told = Told(blue_green)
        host = FakeHost(told, desired=2, stable=0)
        self.assertEqual(host.run(), End("done"))
        self.assertIsNone(told[0].stable)
        self.assertEqual(told[0].traffic, t.Traffic.CANDIDATE)

    def test_done_before_the_candidate_is_ready_is_a_wait(self):
        def hasty(settings, s):
            if s.candidate.replicas == 0:
                return step(scale(0, 2), index=0)
            return step(t.Action_Done())
        host = FakeHost(hasty, desired=2, stable=2)
        self.assertEqual(host.run(), End("done"))
        self.assertEqual(host.kinds(), ["scale", "done", "done"])
        self.assertEqual(host.counts(), ((0, 0), (2, 2)))

    def test_the_step_clock_and_memory(self):
        def paced(settings, s):
            if s.step_index == 0:
                return step(t.Action_Pause(2500), index=1, memory="one")
            if s.step_index == 1 and s.time_in_step_ms < 5000:
                return step(t.Action_Pause(2500), index=1, memory=s.memory + "+")
            if s.candidate.replicas == 0:
                return step(scale(s.stable.replicas, 1), index=2, memory=s.memory)
            return step(t.Action_AwaitPromotion(), index=2) if not s.promoted else step(scale(0, 1), 3)
        told = Told(paced)
        host = FakeHost(told, desired=1, stable=1)
        self.assertEqual(host.run(), End("awaiting-promotion"))
        self.assertEqual([(s.step_index, s.time_in_step_ms, s.memory) for s in told[:4]],
                         [(0, 0, ""), (1, 2500, "one"), (1, 5000, "one+"), (2, 0, "one+")])


class Refusals(unittest.TestCase):
    def test_an_answer_the_host_refuses_fails_and_restores_the_stable_release(self):
        host = FakeHost(lambda settings, s: step(scale(2, 5000)), desired=2, stable=2)
        end = host.run()
        self.assertEqual(end.kind, "failed")
        self.assertIn("maximum of 1000", end.reason)
        self.assertIn("restored", end.reason)
        self.assertEqual(host.counts(), ((2, 2), (0, 0)))

    def test_refusals_as_the_host(self):
        for answer, said in [
            (step(t.Action_Pause(10), memory="m" * (64 << 10 | 1)), "memory"),
            (step(t.Action_Pause(10), description="w" * 1025), "description"),
            (step(t.Action_SetWeight(101)), "above 100 percent"),
            (step(t.Action_Done()), "serve nothing"),
        ]:
            host = FakeHost(lambda settings, s, a=answer: a, desired=2, stable=2)
            end = host.run()
            self.assertEqual(end.kind, "failed", said)
            self.assertIn(said, end.reason)

    def test_err_fails_the_rollout_in_the_host_s_words(self):
        def failing(settings, s):
            raise Err("invalid settings: `x` is required")
        end = FakeHost(failing, desired=2, stable=2, name="mine").run()
        self.assertEqual(end, End("failed", "plugin mine invalid settings: `x` is required; "
                                            "the previous release was restored"))

    def test_answers_that_change_nothing_raise(self):
        for answer, said in [
            (step(scale(2, 0)), "scaling to the current counts"),
            (step(t.Action_SwitchTraffic(t.Traffic.STABLE)), "switching traffic"),
            (step(t.Action_WaitReady()), "wait-ready with every pod ready"),
            (step(t.Action_Pause(0)), "a pause of 0 ms"),
        ]:
            with self.assertRaisesRegex(ContractError, said):
                FakeHost(lambda settings, s, a=answer: a, desired=2, stable=2).run()

    def test_answers_of_the_wrong_shape_raise(self):
        for answer, said in [
            (step(t.Action_Pause(1.5)), "pause's value 1.5 is not a u64"),
            (step(scale(-1, 2)), "scale's stable -1 is not a u32"),
            (step(t.Action_SetWeight(256)), "not a u8"),
            (step(t.Action_Done(), index=None), "step_index None"),
            (step("done"), "none of the Action_"),
            (t.Action_Done(), "not a Step"),
        ]:
            with self.assertRaisesRegex(ContractError, said):
                FakeHost(lambda settings, s, a=answer: a, desired=2, stable=2).run()

    def test_no_end_raises(self):
        with self.assertRaisesRegex(ContractError, "no end after 20 calls"):
            FakeHost(lambda settings, s: step(t.Action_Pause(10)), stable=2).run(max_calls=20)


class Scripts(unittest.TestCase):
    def test_crash_loop_counts_a_restart_a_second_and_asks_every_second(self):
        told = Told(lambda settings, s: step(t.Action_Abort("crashing")) if s.candidate.restarts > 2
                    else blue_green(settings, s))
        end = FakeHost(told, desired=2, stable=2, pods="crash-loop").run()
        self.assertEqual(end, End("aborted", "crashing"))
        # Asked again at once after the scale, then after every simulated second.
        self.assertEqual([s.candidate.restarts for s in told], [0, 0, 1, 2, 3])

    def test_never_ready_waits_until_the_deadline(self):
        host = FakeHost(blue_green, desired=2, stable=2, pods="never-ready", deadline_seconds=10)
        end = host.run()
        self.assertEqual(end.kind, "failed")
        self.assertIn("deadline of 10s: 0 of 2 new pods ready", end.reason)
        self.assertEqual(host.counts(), ((2, 2), (0, 0)))

    def test_slow_ready_pods_get_ready_after_a_while_then_one_a_second(self):
        told = Told(blue_green)
        host = FakeHost(told, desired=2, stable=2, pods="slow-ready", ready_after_seconds=5)
        self.assertEqual(host.run(), End("done"))
        self.assertEqual(host.now_ms, 6000)
        self.assertEqual([s.candidate.ready for s in told[-3:]], [0, 1, 2])

    def test_promotion_after_a_while(self):
        def gated(settings, s):
            if s.candidate.replicas == 0:
                return step(scale(s.stable.replicas, 1))
            if not s.promoted:
                return step(t.Action_AwaitPromotion())
            return step(t.Action_Done(), 2)
        host = FakeHost(gated, desired=1, stable=1, promote_after_seconds=30)
        self.assertEqual(host.run(), End("done"))
        self.assertEqual(host.now_ms, 30_000)

    def test_a_user_abort_restores_the_stable_release(self):
        host = FakeHost(blue_green, desired=3, stable=3, pods="never-ready", abort_after_seconds=7)
        end = host.run()
        self.assertEqual(end, End("aborted", "aborted by a user during the rollout; "
                                             "release 1 serves alone again"))
        self.assertEqual(host.now_ms, 7000)
        self.assertEqual(host.counts(), ((3, 3), (0, 0)))

    def test_a_host_restart_resumes_from_what_was_persisted(self):
        told = Told(lambda settings, s: step(scale(2, 1), index=3, memory="kept")
                    if s.step_index == 0 else blue_green(settings, s))
        host = FakeHost(told, desired=2, stable=2, restart_host_after_calls=1)
        self.assertEqual(host.run(), End("done"))
        self.assertEqual(host.host_restarts, 1)
        # The scale was persisted as the step, but never carried out.
        resumed = told[1]
        self.assertEqual((resumed.step_index, resumed.memory, resumed.candidate.replicas), (3, "kept", 0))

    def test_serving_counts_ready_pods_where_traffic_goes(self):
        def canary(settings, s):
            if s.traffic != t.Traffic.BOTH:
                return step(t.Action_SwitchTraffic(t.Traffic.BOTH))
            if s.candidate.replicas == 0:
                return step(scale(4, 1))
            if s.candidate.ready < 1:
                return step(t.Action_WaitReady())
            if s.stable.replicas == 4:
                return step(scale(0, 1))
            return step(t.Action_Abort("enough"))
        host = FakeHost(canary, desired=4, stable=4)
        self.assertEqual(host.run(), End("aborted", "enough"))
        # 4 old, then 4 + 1, then the old ones gone at once: 1 serves.
        self.assertEqual(host.serving[0], 4)
        self.assertEqual(max(host.serving), 5)
        self.assertEqual(host.min_serving, 1)

    def test_a_fresh_instance_per_call_when_given_a_class(self):
        class Forgetful:
            seen = 0

            def next(self, settings, state):
                self.seen += 1
                assert self.seen == 1, "an instance is used once"
                return blue_green(settings, state)
        self.assertEqual(FakeHost(Forgetful, desired=1, stable=1).run(), End("done"))


if __name__ == "__main__":
    unittest.main()
