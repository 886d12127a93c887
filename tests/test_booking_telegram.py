"""Booking a consultation end to end: real python-telegram-bot over HTTP against the fake Bot API, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icalendar import Calendar

from tests.conftest import FixedClock
from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage
from tests.harness import RunningBot, running_bot
from tests.test_telegram_conversation import _answer_contact_details_and_confirm, _answer_up_to_contact_details


async def _qualify(user: FakeUser) -> SentMessage:
    """Answer the whole questionnaire as a qualified prospect wanting HR and IT; the outcome message."""
    await user.send_text("/start")
    await user.next_message()
    await _answer_up_to_contact_details(user)
    return await _answer_contact_details_and_confirm(user)


async def _book_first_free_time(user: FakeUser, outcome: SentMessage, zone_button: str) -> tuple[str, SentMessage]:
    """Pick a zone, the first day and its first time, and confirm; the slot's callback data and the confirmation."""
    await user.press(outcome, outcome.button(zone_button))
    days = await user.next_screen()
    assert "Pick a day" in days.text
    await user.press(days, days.buttons()[0][1])
    times = await user.next_screen()
    slot = times.buttons()[0][1]
    await user.press(times, slot)
    check = await user.next_screen()
    assert "Please confirm your consultation" in check.text
    await user.press(check, check.button("Book it"))
    return slot, await user.next_message()


def _utc_start(slot_data: str) -> datetime:
    """The UTC start a slot button stands for: tm:<expert>:<YYYYmmddHHMM>."""
    return datetime.strptime(slot_data.rsplit(":", 1)[1], "%Y%m%d%H%M").replace(tzinfo=UTC)


async def test_a_qualified_prospect_books_a_consultation_and_gets_an_invite(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """Zone, day, time, confirm: a confirmation in both zones and an .ics invite with the right UTC start."""
    ada = fake.user(5151, first_name="Ada", last_name="Lovelace")
    outcome = await _qualify(ada)
    assert "Which time zone are you in?" in outcome.text

    slot, confirmation = await _book_first_free_time(ada, outcome, "Berlin")
    invite = await ada.next_message()

    start = _utc_start(slot)
    assert "Your consultation is booked" in confirmation.text
    assert "Berlin (UTC+01:00)" in confirmation.text
    assert "meet.meridian-outsourcing.example" in confirmation.text
    assert invite.document is not None
    assert invite.document["filename"] == "consultation.ics"
    calendar = Calendar.from_ical(invite.document["content"])
    event = calendar.events[0]
    assert str(calendar["METHOD"]) == "REQUEST"
    assert event.start == start
    assert "ada@example.com" in str(event["ATTENDEE"])
    stored = await bot.services.bookings.upcoming_for(1)
    assert [(b.starts_at, b.attendee_zone, b.attendee_email) for b in stored] == [
        (start, "Europe/Berlin", "ada@example.com")
    ]
    assert fake.rejected() == []


async def test_a_booked_time_is_offered_to_nobody_else_and_a_forged_press_for_it_is_refused(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """After Ada books, her time is gone from the expert's offers, and pressing it anyway books nothing."""
    ada = fake.user(5252, first_name="Ada")
    slot, _ = await _book_first_free_time(ada, await _qualify(ada), "London")
    expert_key = slot.split(":")[1]
    bob = fake.user(5353, first_name="Bob")
    bob_outcome = await _qualify(bob)
    await bob.press(bob_outcome, bob_outcome.button("London"))
    days = await bob.next_screen()
    answered = len(bob.callback_answers())

    await bob.press(days, "tm:" + slot.removeprefix("tm:"), forge=True)
    await fake.wait_until_idle()
    await bob.wait_for_callback_answers(answered + 1)

    expert = bot.services.bookings.expert(expert_key)
    assert expert is not None
    offered = [offer.slot.start for offer in await bot.services.bookings.offers([expert])]
    assert _utc_start(slot) not in offered
    assert any(
        "not offered" in str(answer.get("text")) or "earlier message" in str(answer.get("text"))
        for answer in bob.callback_answers()
    )
    assert len(await bot.services.bookings.upcoming_with(expert_key, since=datetime.now(UTC))) == 1


async def test_a_prospect_types_a_city_for_their_time_zone(fake: FakeTelegram, bot: RunningBot) -> None:
    """'Other' takes a typed city; times are then shown on that city's clock."""
    ada = fake.user(5454, first_name="Ada")
    outcome = await _qualify(ada)

    await ada.press(outcome, outcome.button("Other"))
    asked = await ada.next_screen()
    await ada.send_text("São Paulo")
    days = await ada.next_message()

    assert "Type your city" in asked.text
    assert "Sao Paulo (UTC-03:00)" in days.text


async def test_nonsense_for_a_time_zone_gets_the_buttons_again(fake: FakeTelegram, bot: RunningBot) -> None:
    """Text that names no zone is answered with the zone buttons and an example of what works."""
    ada = fake.user(5555, first_name="Ada")
    await _qualify(ada)

    again = await ada.next_reply("banana republic")

    assert "couldn't find a time zone" in again.text
    assert any("Berlin" in label for label, _ in again.buttons())


async def test_an_abbreviation_is_confirmed_before_it_is_used(fake: FakeTelegram, bot: RunningBot) -> None:
    """'PST' asks "Did you mean Los Angeles?"; yes shows the days on Pacific time."""
    ada = fake.user(5656, first_name="Ada")
    await _qualify(ada)

    check = await ada.next_reply("PST")
    asked = check.text
    await ada.press(check, check.button("Yes"))
    days = await ada.next_screen()

    assert "Did you mean" in asked
    assert "Los Angeles" in asked
    assert "Los Angeles (UTC-08:00)" in days.text


async def _book_on_the_last_day_shown(user: FakeUser, outcome: SentMessage) -> tuple[str, SentMessage]:
    """Book the first time of the last day on the first page, far enough ahead to be changed."""
    await user.press(outcome, outcome.button("London"))
    days = await user.next_screen()
    day_buttons = [data for _, data in days.buttons() if data.startswith("dy:")]
    await user.press(days, day_buttons[-1])
    times = await user.next_screen()
    slot = times.buttons()[0][1]
    await user.press(times, slot)
    check = await user.next_screen()
    await user.press(check, check.button("Book it"))
    confirmation = await user.next_message()
    await user.next_message()
    return slot, confirmation


async def test_a_prospect_reschedules_keeping_the_invite_uid_with_a_higher_sequence(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """/mybookings → Reschedule → a new day and time → Move it: a new invite for the same event, SEQUENCE 1."""
    ada = fake.user(5757, first_name="Ada")
    slot, _ = await _book_on_the_last_day_shown(ada, await _qualify(ada))
    listing = await ada.next_reply("/mybookings")

    await ada.press(listing, listing.button("Reschedule 1"))
    days = await ada.next_screen()
    moving_days = days.text
    await ada.press(days, days.buttons()[0][1])
    times = await ada.next_screen()
    new_slot = times.buttons()[0][1]
    await ada.press(times, new_slot)
    check = await ada.next_screen()
    moving_text = check.text
    await ada.press(check, check.button("Move it"))
    moved = await ada.next_message()
    invite = await ada.next_message()

    assert "Pick a new day" in moving_days
    assert "Move your consultation?" in moving_text
    assert "Your consultation has been moved." in moved.text
    assert invite.document is not None
    event = Calendar.from_ical(invite.document["content"]).events[0]
    assert event.start == _utc_start(new_slot)
    assert int(str(event["SEQUENCE"])) == 1
    [booking] = await bot.services.bookings.upcoming_for(1)
    assert str(event["UID"]) == booking.uid
    assert booking.starts_at == _utc_start(new_slot) != _utc_start(slot)


async def test_a_prospect_cancels_after_confirming_and_the_time_is_offered_again(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """/mybookings → Cancel → Yes: a METHOD:CANCEL invite goes out and the slot is free for others again."""
    ada = fake.user(5858, first_name="Ada")
    slot, _ = await _book_on_the_last_day_shown(ada, await _qualify(ada))
    expert = bot.services.bookings.expert(slot.split(":")[1])
    assert expert is not None
    listing = await ada.next_reply("/mybookings")

    await ada.press(listing, listing.button("Cancel 1"))
    check = await ada.next_message()
    await ada.press(check, check.button("Yes, cancel it"))
    cancelled = await ada.next_message()
    notice = await ada.next_message()

    assert "Cancel your consultation" in check.text
    assert "is cancelled" in cancelled.text
    assert notice.document is not None
    calendar = Calendar.from_ical(notice.document["content"])
    assert str(calendar["METHOD"]) == "CANCEL"
    assert int(str(calendar.events[0]["SEQUENCE"])) == 1
    offered = [offer.slot.start for offer in await bot.services.bookings.offers([expert])]
    assert _utc_start(slot) in offered
    assert await bot.services.bookings.upcoming_for(1) == []


async def test_too_close_to_the_start_a_consultation_cannot_be_changed_and_the_prospect_is_told_whom_to_ask(
    fake: FakeTelegram, database_url: str
) -> None:
    """Within the change notice, /mybookings shows no buttons and an old Cancel button names the contact."""
    clock = FixedClock(datetime.now(UTC))
    async with running_bot(fake, database_url, clock=clock) as bot:
        ada = fake.user(5959, first_name="Ada")
        await _book_on_the_last_day_shown(ada, await _qualify(ada))
        listing = await ada.next_reply("/mybookings")
        [booking] = await bot.services.bookings.upcoming_for(1)

        clock.now = booking.starts_at - timedelta(hours=11)
        late_listing = await ada.next_reply("/mybookings")
        await ada.press(listing, listing.button("Cancel 1"))
        refusal = await ada.next_message()
        still_booked = await bot.services.bookings.upcoming_for(1)

    assert "starts soon" in late_listing.text
    assert late_listing.buttons() == []
    assert "can no longer be changed" in refusal.text
    assert "consultations@meridian-outsourcing.example" in refusal.text
    assert still_booked == [booking]


async def _confirm_screen_of_first_free_time(user: FakeUser) -> tuple[str, SentMessage]:
    """Qualify, pick London, the first day and its first time; the slot and the "Book it" screen."""
    outcome = await _qualify(user)
    await user.press(outcome, outcome.button("London"))
    days = await user.next_screen()
    await user.press(days, days.buttons()[0][1])
    times = await user.next_screen()
    slot = times.buttons()[0][1]
    await user.press(times, slot)
    return slot, await user.next_screen()


async def test_a_prospect_who_loses_the_race_for_a_time_is_told_and_shown_the_times_still_free(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """Ada and Bob both reach "Book it" for one time; Ada books first, Bob is told and gets fresh days."""
    ada = fake.user(6161, first_name="Ada")
    bob = fake.user(6262, first_name="Bob")
    ada_slot, ada_check = await _confirm_screen_of_first_free_time(ada)
    bob_slot, bob_check = await _confirm_screen_of_first_free_time(bob)
    assert ada_slot == bob_slot

    await ada.press(ada_check, ada_check.button("Book it"))
    assert "Your consultation is booked" in (await ada.next_message()).text
    await bob.press(bob_check, bob_check.button("Book it"))
    fresh = await bob.next_screen()

    assert "just booked by someone else" in fresh.text
    day_buttons = [data for _, data in fresh.buttons() if data.startswith("dy:")]
    assert day_buttons
    await bob.press(fresh, day_buttons[0])
    times = await bob.next_screen()
    assert ada_slot not in [data for _, data in times.buttons()]
    expert_key = ada_slot.split(":")[1]
    booked = await bot.services.bookings.upcoming_with(expert_key, since=datetime.now(UTC))
    assert [booking.starts_at for booking in booked] == [_utc_start(ada_slot)]
    assert await bot.services.bookings.upcoming_for(2) == []


async def test_pressing_a_time_someone_just_booked_answers_the_button_with_why(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """Bob presses a time Ada booked since his list was drawn: the button's answer says it is no longer free, and
    the list turns into the days still free (the answer tells him even where that is what he already sees)."""
    ada = fake.user(6363, first_name="Ada")
    bob = fake.user(6464, first_name="Bob")
    ada_slot, ada_check = await _confirm_screen_of_first_free_time(ada)
    outcome = await _qualify(bob)
    await bob.press(outcome, outcome.button("London"))
    days = await bob.next_screen()
    await bob.press(days, days.buttons()[0][1])
    times = await bob.next_screen()
    assert ada_slot in [data for _, data in times.buttons()]
    await ada.press(ada_check, ada_check.button("Book it"))
    assert "Your consultation is booked" in (await ada.next_message()).text
    answered = len(bob.callback_answers())

    await bob.press(times, ada_slot)
    fresh = await bob.next_screen()
    await bob.wait_for_callback_answers(answered + 1)

    assert "no longer free" in fresh.text
    assert "no longer free" in str(bob.callback_answers()[-1].get("text"))
    assert await bot.services.bookings.upcoming_for(2) == []
