"""General Order 375.01 as data, plus pure checks and reply parsing. No I/O, no Slack.

The checks return an officer-readable reason (from `bot.wording`) or None; `check_answers` returns every reason
in dialog-step order. The parsers read chat replies and the text of an upload message.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from bot import wording
from bot.config import PolicySettings

POLICY_ID = "GO 375.01"
DEFAULT_CALL_NUMBER_PATTERN = r"^\d{2}-\d{6}$"
DEFAULT_CALL_NUMBER_EXAMPLE = "26-012345"


# --- Purposes (GO 375.01 B.1) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Purpose:
    """One of the three uses B.1 permits. `number` is what officers reply (1-3); `code` is stored and audited."""

    code: str
    number: int
    label: str
    clause: str
    description: str


PURPOSES: tuple[Purpose, ...] = (
    Purpose(
        "investigation", 1, "Active investigation", "B.1",
        "Reasonable suspicion that the search will provide information relevant to an active investigation.",
    ),
    Purpose(
        "threat", 2, "Imminent threat to health or safety", "B.1",
        "Reasonable suspicion that the search will provide information relevant to an imminent threat to "
        "health or safety.",
    ),
    Purpose(
        "identify", 3, "Identify a deceased person or a person unable to identify themselves", "B.1",
        "Reasonable suspicion that the search will help identify a deceased person or a person unable to "
        "identify themselves.",
    ),
)
PURPOSE_CODES: tuple[str, ...] = tuple(p.code for p in PURPOSES)

# Reply keywords per purpose code (besides the number and the code itself).
PURPOSE_KEYWORDS: dict[str, frozenset[str]] = {
    "investigation": frozenset({"investigation", "investigations", "investigate", "investigating",
                                "investigative", "case", "active"}),
    "threat": frozenset({"threat", "threats", "imminent", "danger", "dangerous", "safety", "emergency",
                         "health"}),
    "identify": frozenset({"identify", "identification", "identifying", "deceased", "dead", "decedent",
                           "unconscious", "unable", "unidentified", "body"}),
}


def purpose_by_code(code: str | None) -> Purpose | None:
    """The purpose with this code, or None when there is none."""
    return next((p for p in PURPOSES if p.code == code), None)


def purpose_by_number(number: int) -> Purpose | None:
    """The purpose with this number (1-3), or None."""
    return next((p for p in PURPOSES if p.number == number), None)


# --- Protected classes (GO 375.01 C) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtectedClass:
    """A classification section C names, with words that describe a person by it (lower case)."""

    name: str
    words: frozenset[str]


def _pc(name: str, words: str) -> ProtectedClass:
    # Comma-separated so multi-word terms ("illegal alien") read naturally in the table below.
    return ProtectedClass(name, frozenset(w.strip() for w in words.split(",") if w.strip()))


# Words that only describe who someone is. Removing them from a justification must leave facts behind.
# Plurals ending in -s are matched by the lookup; irregular ones are listed.
PROTECTED_CLASSES: tuple[ProtectedClass, ...] = (
    _pc("race", "race, racial, black, white, african, african american, afro, caucasian, asian, brown, "
                "native american, indigenous, pacific islander, biracial, mixed race, dark skinned, "
                "light skinned, skin, skinned, complexion, colored"),
    _pc("religion", "religion, religious, muslim, islamic, jewish, jew, christian, catholic, protestant, hindu, "
                    "sikh, buddhist, mormon, atheist, hijab, headscarf, turban, yarmulke, kippah, burqa, niqab, "
                    "mosque, church, synagogue, temple, gurdwara, praying, prayer, prayers, worship, "
                    "worshipper, worshippers, congregation"),
    _pc("ethnicity", "ethnicity, ethnic, hispanic, latino, latina, latinx, chicano, chicana, arab, arabic, "
                     "middle eastern, hmong, romani"),
    _pc("citizenship", "citizenship, citizen, noncitizen, immigrant, immigration, undocumented, illegal, "
                       "illegal alien, alien, migrant, refugee, asylum, foreigner, foreign, deportable"),
    _pc("national origin", "national origin, nationality, american, mexican, central american, salvadoran, "
                           "guatemalan, honduran, cuban, puerto rican, chinese, vietnamese, filipino, korean, "
                           "japanese, indian, pakistani, afghan, iranian, iraqi, syrian, russian, ukrainian, "
                           "somali, ethiopian, eritrean, nigerian, haitian, laotian, cambodian, punjabi, fijian, "
                           "samoan, tongan, accent"),
    _pc("age", "age, aged, old, older, elderly, young, younger, youth, youthful, teen, teens, teenager, teenage, "
               "juvenile, kid, child, children, minor, senior, middle aged, adult, twenties, thirties, forties, "
               "fifties, sixties, 20s, 30s, 40s, 50s, 60s, 70s"),
    _pc("disability", "disability, disabled, handicapped, wheelchair, deaf, blind, mute, crutches, cane, "
                      "amputee, prosthetic, autistic, autism, mentally ill, limp"),
    _pc("gender", "gender, sex, male, female, man, men, woman, women, boy, boys, girl, girls, gentleman, "
                  "gentlemen, lady, ladies"),
    _pc("gender identity", "gender identity, transgender, trans, nonbinary, non binary, genderqueer, "
                           "gender nonconforming, cross dresser"),
    _pc("sexual orientation", "sexual orientation, gay, lesbian, bisexual, queer, homosexual, lgbt, lgbtq"),
    _pc("other protected classification", "pregnant, pregnancy, veteran, military status, marital status, "
                                          "married, homeless, unhoused, protester, protestor, activist, "
                                          "demonstrator, protest, protests, rally, demonstration, march, "
                                          "vigil, picket, loitering, neighborhood, neighbourhood"),
)
# Lookup tables built from the table above: single words, then multi-word terms as word tuples.
_PROTECTED_WORD: dict[str, str] = {w: pc.name for pc in PROTECTED_CLASSES for w in pc.words if " " not in w}
_PROTECTED_PHRASES: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    (tuple(w.split()), pc.name) for pc in PROTECTED_CLASSES for w in pc.words if " " in w
)


def _vocab(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that carry no fact about the incident: grammar, hedges, and the bare vocabulary of describing a person
# or asking for a search. A physical description is not reasonable suspicion on its own.
STOP_WORDS: frozenset[str] = _vocab("""
a an the and or but nor so yet of in on at to for from by with without about as into onto over under near
is are was were be been being am do does did done have has had having will would shall should can could may
might must this that these those it its he him his she her hers they them their i me my we us our you your
who whom whose which what when where why how there here than then also just very really only some any
not no yes if please pls thanks thank maybe probably think believe possibly likely perhaps something
anything someone somebody anyone thing things same other another like
""")

FILLER_WORDS: frozenset[str] = _vocab("""
suspect suspects person persons people individual individuals subject subjects guy guys dude dudes party
someone looks look looking looked appears appear appeared appearance seems seem resembles resemble similar
matches match matching matched description described describe describes fits fit fitting profile
suspicious suspiciously sketchy shady involved check run search searching identify id photo picture image pic
face facial recognition frs wearing wore worn dressed clothes clothing outfit hoodie hooded sweatshirt jacket
coat shirt tshirt tee pants jeans shorts hat cap beanie shoes sneakers boots backpack bag glasses sunglasses
mask tall short thin skinny slim heavy heavyset stocky large big small medium build height weight hair
haired bald beard bearded mustache goatee eyes eye tattoo tattoos tattooed scar scars piercing
red blue green yellow orange purple pink gray grey dark light blond blonde brunette
years yrs yo approximately approx around roughly about feet foot ft inches inch lbs pounds
""")

# Words that say nothing at all (placeholder answers).
PLACEHOLDER_WORDS: frozenset[str] = _vocab("""
na none nil null test testing tbd todo tba xxx asdf asdfg asdfgh qwer qwerty zxcv hjkl jkl fdsa lorem ipsum
dolor sit amet foo bar baz blah placeholder whatever idk unknown nothing justification reason see above
""")

MIN_FACT_WORDS = 4          # distinct content words a justification must keep once descriptions are removed
MAX_NUMBER_FACT_WORDS = 2   # numbers (dates, times, case numbers) count, but for at most this many
MIN_DISTINCT_WORDS = 4      # fewer distinct real words than this, however long, is a placeholder

_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    """Lower-case word tokens; possessive 's dropped, hyphens and slashes split words."""
    text = re.sub(r"['’]s\b", "", text.casefold()).replace("'", "").replace("’", "")
    return _WORD.findall(text)


def _singular(word: str) -> str:
    """Drop a regular plural -s (males, immigrants, suspects) for vocabulary lookups."""
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _in(word: str, vocab: frozenset[str]) -> bool:
    """Membership allowing a regular plural."""
    return word in vocab or _singular(word) in vocab


def _protected_hits(words: list[str]) -> tuple[set[int], list[str]]:
    """Positions of protected-class words (single and multi-word terms) and the classes they name, in
    table order."""
    hit: set[int] = set()
    names: set[str] = set()
    singular = [_singular(w) for w in words]
    for i, w in enumerate(words):
        name = _PROTECTED_WORD.get(w) or _PROTECTED_WORD.get(singular[i])
        if name:
            hit.add(i)
            names.add(name)
    for parts, name in _PROTECTED_PHRASES:
        n = len(parts)
        for i in range(len(words) - n + 1):
            if all(parts[j] in (words[i + j], singular[i + j]) for j in range(n)):
                hit.update(range(i, i + n))
                names.add(name)
    return hit, [pc.name for pc in PROTECTED_CLASSES if pc.name in names]


def protected_classes_mentioned(text: str) -> tuple[str, ...]:
    """Names of the protected classes (section C) whose vocabulary appears in `text`."""
    return tuple(_protected_hits(_words(text))[1])


def fact_words(text: str) -> list[str]:
    """Distinct words of `text` that state facts: not protected-class, stop, filler or placeholder words.

    Numbers count for at most MAX_NUMBER_FACT_WORDS, so a height and weight alone are not facts.
    Single letters are dropped. Order of first appearance.
    """
    words = _words(text)
    protected, _ = _protected_hits(words)
    letters: list[str] = []
    numbers: list[str] = []
    for i, w in enumerate(words):
        if i in protected or (len(w) < 2 and not w.isdigit()):
            continue
        if _in(w, STOP_WORDS) or _in(w, FILLER_WORDS) or _in(w, PLACEHOLDER_WORDS):
            continue
        bucket = numbers if any(c.isdigit() for c in w) else letters
        if w not in bucket:
            bucket.append(w)
    return letters + numbers[:MAX_NUMBER_FACT_WORDS]


def _real_words(words: list[str]) -> list[str]:
    """Words that are not placeholders, single letters or one character repeated (aaaa, xxxxx)."""
    return [
        w for w in words
        if not _in(w, PLACEHOLDER_WORDS)
        and (len(w) > 1 or w.isdigit())
        and not (len(w) > 2 and len(set(w)) == 1 and not w.isdigit())
    ]


# A justification is stored on one line (collapsed whitespace): line breaks in it could otherwise forge
# lines such as "Candidates: ..." wherever it is echoed. Long enough for any real set of facts.
MAX_JUSTIFICATION_CHARS = 2000


def collapse_whitespace(text: str) -> str:
    """Trim and collapse runs of whitespace to one space."""
    return " ".join(text.split())


# --- Checks -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answers:
    """The requester's answers, as collected by the CLI flags or the chat dialog."""

    call_number: str | None = None
    purpose: str | None = None
    justification: str | None = None
    attested: bool = False


# Dashes that word processors, phones (autocorrect) and CAD screens put where a call number has a hyphen:
# hyphen, non-breaking hyphen, figure dash, en dash, em dash, horizontal bar, minus sign, small em dash, small
# hyphen-minus, fullwidth hyphen-minus. All read as "-".
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"))


def _plain_text(text: str) -> str:
    """NFKC (fullwidth digits become ASCII) with every dash read as "-": the form call numbers are matched in."""
    return unicodedata.normalize("NFKC", text).translate(_DASHES)


def normalise_call_number(value: str | None) -> str | None:
    """The call number as it is stored and searched: NFKC (fullwidth digits become ASCII), any dash as "-"
    ("26–012345" pasted with an en dash is 26-012345), trimmed.

    Stored in one form, so `/frs audit 26-012345` finds every request for the call."""
    if value is None:
        return None
    return _plain_text(value).strip()


def check_call_number(value: str | None, pattern: str = DEFAULT_CALL_NUMBER_PATTERN) -> str | None:
    """Reason the call number is refused (missing, or no full match of the configured pattern), else None.
    A refusal quotes what was read, so a look-alike character the officer cannot see is at least shown.

    Matched with re.ASCII: `\\d` means 0-9 only, as a CAD system writes them."""
    normal = normalise_call_number(value)
    if not normal:
        return wording.CALL_NUMBER_MISSING
    if re.fullmatch(pattern, normal, re.ASCII) is None:
        return wording.call_number_invalid(example_call_number(pattern), (value or "").strip())
    return None


def check_purpose(value: str | None) -> str | None:
    """Reason the purpose is refused (missing, or not one of the B.1 codes), else None."""
    if value is None or not value.strip():
        return wording.PURPOSE_MISSING
    if value not in PURPOSE_CODES:
        return wording.purpose_unknown(PURPOSE_CODES)
    return None


# Stems of words that name an incident, a person in need of identification, or the evidence behind a lead.
# Every justification must name one of these: reasonable suspicion (B.1) is about what happened, and without
# it a search that mentions a protected class would rest on who the person is (C). A screen, not a judgement.
INCIDENT_STEMS: tuple[str, ...] = tuple(sorted(_vocab("""
robb theft thief thieves stole steal shoplift larcen burglar assault batter attack stabb shoot gunshot gunfire
gunpoint firearm weapon knife pistol rifle homicid murder kill kidnap abduct carjack fraud forger counterfeit
scam vandal graffiti arson threat bomb hostage missing runaway deceas death unconscious unresponsive overdos
injur wound victim witness warrant crime criminal offens offenc incident collision crash trafficking narcotic
dealing camera cctv video footage surveillance recording report complaint evidence fingerprint
vehicle license trespass harass stalk punch abus molest indecent flee intoxicat dementia alzheimer wander
amnes disorient incapacit hospital confus""")))
# Short words matched whole (as prefixes they would match "Robert", "stable", "deadline", "breakfast"...).
INCIDENT_WORDS: frozenset[str] = _vocab("""
rob robs gun guns stab stabs shot shots dead body bodies remains hit sold wanted fled beat beaten beating
fight fights fought rape raped rapist dui drunk case cases plate plates forged amber""")


def names_incident(text: str) -> bool:
    """Whether `text` names an incident, a person to identify, or evidence (see INCIDENT_STEMS)."""
    return any(w in INCIDENT_WORDS or w.startswith(INCIDENT_STEMS) for w in _words(text))


def check_justification(text: str | None, min_chars: int = 40) -> str | None:
    """Reason the justification is refused, else None.

    In order: missing; only placeholder words (n/a, test, xxx); a protected class with no facts (GO 375.01 C,
    before any length check); shorter than `min_chars` after trimming and
    collapsing whitespace; fewer than MIN_DISTINCT_WORDS distinct real words (long filler); fewer than
    MIN_FACT_WORDS fact words, or no incident named, once protected-class words, stop words and the generic
    vocabulary of describing a person are removed (B.1). Mentioning a protected class alongside real facts is
    allowed (and flagged: `justification_flags`).
    """
    if text is None or not text.strip():
        return wording.JUSTIFICATION_MISSING
    clean = collapse_whitespace(text)
    words = _words(clean)
    real = _real_words(words)
    if not real:
        return wording.JUSTIFICATION_PLACEHOLDER
    has_facts = len(fact_words(clean)) >= MIN_FACT_WORDS and names_incident(clean)
    if protected_classes_mentioned(clean) and not has_facts:
        # Before length: "too short" would teach padding, where GO 375.01 C is the reason.
        return wording.JUSTIFICATION_PROTECTED_CLASS
    if len(clean) < min_chars:
        return wording.justification_too_short(min_chars)
    if len(clean) > MAX_JUSTIFICATION_CHARS:
        return wording.justification_too_long(MAX_JUSTIFICATION_CHARS)
    if len(set(real)) < MIN_DISTINCT_WORDS:
        return wording.JUSTIFICATION_PLACEHOLDER
    if has_facts:
        return None
    return wording.JUSTIFICATION_NO_FACTS


# Plain words for a person ("this man", "a woman") name a gender in nearly every description: flagging them
# would flag almost every justification and make the flag worthless to a reviewer.
UNFLAGGED_CLASSES = frozenset({"gender"})


def justification_flags(text: str | None) -> tuple[str, ...]:
    """Flags for command staff on a justification that passed: "protected_class" when it names one beyond a
    plain man or woman (GO 375.01 C allows that alongside facts, but a reviewer should see it)."""
    named = set(protected_classes_mentioned(collapse_whitespace(text))) if text else set()
    return ("protected_class",) if named - UNFLAGGED_CLASSES else ()


def check_attestation(attested: bool) -> str | None:
    """Reason when the requester has not attested, else None."""
    return None if attested is True else wording.ATTESTATION_MISSING


def check_answers(answers: Answers, policy: PolicySettings) -> list[str]:
    """Every denial reason, in dialog-step order (call number, purpose, justification, attestation)."""
    reasons = [
        check_call_number(answers.call_number, policy.call_number_pattern),
        check_purpose(answers.purpose),
        check_justification(answers.justification, policy.justification_min_chars),
        check_attestation(answers.attested),
    ]
    return [r for r in reasons if r]


# --- Call numbers -----------------------------------------------------------------------------------------------

_LEADING_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")


def unanchored_pattern(pattern: str) -> str:
    """The configured pattern for searching inside text: anchors removed, bounded so it never matches part
    of a longer token ("126-0123456" does not yield "26-012345"). Neighbouring letters, digits, underscores
    and hyphens count as part of the token; `\\b` is not used because a pattern may start with a non-word
    character.
    """
    flags = ""
    m = _LEADING_FLAGS.match(pattern)
    if m:  # global inline flags must stay at the very start
        flags, pattern = m.group(0), pattern[m.end():]
    for anchor in ("^", r"\A"):
        if pattern.startswith(anchor):
            pattern = pattern[len(anchor):]
            break
    if pattern.endswith((r"\Z", r"\z")) and _unescaped_tail(pattern[:-1]):
        pattern = pattern[:-2]
    elif pattern.endswith("$") and _unescaped_tail(pattern):
        pattern = pattern[:-1]
    return rf"{flags}(?<![\w-])(?:{pattern})(?![\w-])"


def _unescaped_tail(pattern: str) -> bool:
    """True when the last character is not escaped (an even number of backslashes precede it)."""
    body = pattern[:-1]
    return (len(body) - len(body.rstrip("\\"))) % 2 == 0


def find_call_numbers(text: str, pattern: str = DEFAULT_CALL_NUMBER_PATTERN) -> list[str]:
    """Every distinct call number in `text` (Slack markup removed), in order: for indexing dispatch messages."""
    found: list[str] = []
    plain = _plain_text(slack_to_plain(text))
    for m in re.finditer(unanchored_pattern(pattern), plain, re.ASCII):
        if m.group(0) not in found:
            found.append(m.group(0))
    return found


def find_call_number(text: str, pattern: str = DEFAULT_CALL_NUMBER_PATTERN) -> str | None:
    """The call number in `text` when exactly one distinct one is there; None when none or several (ask)."""
    found = find_call_numbers(text, pattern)
    return found[0] if len(found) == 1 else None


def parse_call_number(text: str, pattern: str = DEFAULT_CALL_NUMBER_PATTERN) -> str | None:
    """A call-number reply: the whole reply, or the one call number inside it ("call 26-012345")."""
    plain = normalise_call_number(slack_to_plain(text)) or ""
    if re.fullmatch(pattern, plain, re.ASCII):
        return plain
    return find_call_number(plain, pattern)


def example_call_number(pattern: str) -> str | None:
    """An example call number for prompts: known for the default pattern, else built from simple patterns
    (digits, literal characters, [A-Z] classes, fixed counts) and verified; None when that fails."""
    if pattern == DEFAULT_CALL_NUMBER_PATTERN:
        return DEFAULT_CALL_NUMBER_EXAMPLE
    body = pattern.removeprefix("^").removesuffix("$")
    out: list[str] = []
    token = re.compile(r"\\d|\[A-Z\]|\[a-z\]|\[0-9\]|\\?[A-Za-z0-9\-#/:.]")
    pos = 0
    digit = iter("2601234567890123456789")
    while pos < len(body):
        m = token.match(body, pos)
        if not m:
            return None
        tok = m.group(0)
        pos = m.end()
        count = 1
        q = re.compile(r"\{(\d+)\}").match(body, pos)
        if q:
            count, pos = int(q.group(1)), q.end()
        for _ in range(count):
            if tok in (r"\d", "[0-9]"):
                out.append(next(digit, "0"))
            elif tok == "[A-Z]":
                out.append("A")
            elif tok == "[a-z]":
                out.append("a")
            else:
                out.append(tok[-1])
    example = "".join(out)
    return example if re.fullmatch(pattern, example) else None


# --- Reading chat replies and the upload message ----------------------------------------------------------------

_SLACK_CONTROL = re.compile(r"<([^<>]*)>")
_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'",
                         "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"',
                         "\u200b": None, "\u200c": None, "\u200d": None, "\ufeff": None})


def _slack_control(m: re.Match[str]) -> str:
    target, _, label = m.group(1).partition("|")
    if label:
        return label
    if target.startswith("!"):  # <!channel>, <!here>
        return "@" + target[1:].split("^")[0]
    if target.startswith(("mailto:", "tel:")):
        return target.split(":", 1)[1]
    return target


def slack_to_plain(text: str | None) -> str:
    """Slack message text as the person typed it: links and mentions to their labels, &amp; &lt; &gt; unescaped,
    smart quotes folded, zero-width characters removed, trimmed. Case and inner spacing are kept."""
    if not text:
        return ""
    text = _SLACK_CONTROL.sub(_slack_control, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.translate(_QUOTES).strip()


_EMOJI_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                  "nine": 9, "keycap_ten": 10}


def normalise_reply(text: str | None) -> str:
    """A reply for matching: Slack markup and *bold*/_italic_/~strike~/`code` markers removed, smart quotes
    folded, every dash read as "-", case-folded, whitespace trimmed and collapsed."""
    text = slack_to_plain(text).translate(_DASHES)
    # Slack sends number emoji as shortcodes: ":two:" is a reply of "2" (purpose, face choice).
    text = re.sub(r":(one|two|three|four|five|six|seven|eight|nine|keycap_ten):",
                  lambda m: str(_EMOJI_NUMBERS[m.group(1)]), text)
    text = re.sub(r"[*_~`]", "", text)
    text = re.sub(r"^(?:>\s*)+", "", text)  # a quoted reply
    return collapse_whitespace(text.casefold())


def _bare(text: str | None) -> str:
    """Normalised reply without surrounding quotes and closing punctuation."""
    return normalise_reply(text).strip(" '\"").rstrip(".!").strip(" '\"")


def is_attestation(text: str | None) -> bool:
    """True for the attestation reply: exactly "I attest" (any case, quotes, final full stop)."""
    return _bare(text) == wording.ATTEST_REPLY.casefold()


CANCEL_WORDS = frozenset({"cancel", "stop", "abort", "cancel request", "cancel this request"})


def is_cancel(text: str | None) -> bool:
    """True for a reply that ends the dialog: cancel, stop or abort."""
    return _bare(text) in CANCEL_WORDS


def parse_purpose(text: str | None) -> str | None:
    """A purpose code from a reply: its number (1-3), its code, or keywords. None when nothing or conflicting
    purposes are named ("investigation of a threat")."""
    words = _words(normalise_reply(text))
    codes: set[str] = set()
    for w in words:
        if w.isdigit():
            p = purpose_by_number(int(w))
            if p:
                codes.add(p.code)
            continue
        for code, keywords in PURPOSE_KEYWORDS.items():
            if w == code or w in keywords:
                codes.add(code)
    return codes.pop() if len(codes) == 1 else None


# A purpose reply is short ("1", "threat", "imminent threat", "purpose 2"). Longer free text is not read as a
# purpose: a justification typed one step early ("2 men robbed the pharmacy") must not set purpose 2.
MAX_PURPOSE_REPLY_WORDS = 4


def parse_purpose_reply(text: str | None) -> str | None:
    """A purpose from a reply at the purpose step: `parse_purpose`, but only for a short reply."""
    if len(_words(normalise_reply(text))) > MAX_PURPOSE_REPLY_WORDS:
        return None
    return parse_purpose(text)


_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10}
_FACE_REPLY = re.compile(r"(?:(?:face|number|no\.?|option)\s*)?#?\s*(\d+|[a-z]+)\s*[.)]?")


def parse_face_choice(text: str | None, n_faces: int) -> int | None:
    """A face number (1..n_faces) from a reply like "2", "#2", "face 2" or "two"; None otherwise."""
    m = _FACE_REPLY.fullmatch(_bare(text))
    if not m:
        return None
    raw = m.group(1)
    k = int(raw) if raw.isdigit() else _NUMBER_WORDS.get(raw)
    return k if k is not None and 1 <= k <= n_faces else None


_JUSTIFICATION_LABEL = re.compile(r"justification[*_~]*\s*[:：]", re.IGNORECASE)
_PURPOSE_LABEL = re.compile(r"\bpurpose\s*(?:is\b)?[\s:=#\-]*([^\W_]+)", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"[,;.!?:()\[\]|\n]+")
# Words that may stand beside a bare purpose code word in its phrase ("Call 26-012345, investigation").
_CODE_WORD_COMPANIONS = frozenset({"call", "case", "cad", "incident", "no", "number", "purpose", "for", "re"})


def _split_at_justification(plain: str) -> tuple[str, str | None]:
    m = _JUSTIFICATION_LABEL.search(plain)
    if not m:
        return plain, None
    return plain[: m.start()], plain[m.end():]


def find_justification(text: str | None) -> str | None:
    """The text after a `justification:` label (any case) to the end of the message, or None."""
    _, after = _split_at_justification(slack_to_plain(text))
    if after is None:
        return None
    after = re.sub(r"^\s*[*_~]+(?=\s|$)", "", after)  # the closing marker of a bold "*Justification:*"
    return collapse_whitespace(after) or None


def _standalone_code(clause: str) -> str | None:
    """The purpose code a phrase names when it is only a code word with its keywords, call numbers and words
    like "call" or "purpose" ("Call 26-012345, threat"); None inside a sentence ("need to identify him")."""
    words = _words(clause)
    codes = {w for w in words if w in PURPOSE_CODES}
    if len(codes) != 1:
        return None
    code = codes.pop()
    allowed = _CODE_WORD_COMPANIONS | PURPOSE_KEYWORDS[code] | {code}
    return code if all(w in allowed or any(c.isdigit() for c in w) for w in words) else None


def find_purpose(text: str | None) -> str | None:
    """The purpose in an upload message: "purpose: 2" / "purpose: threat", else a code word (investigation,
    threat, identify) standing as its own phrase, so that "need to identify this man" never picks a purpose.
    Only the text before a `justification:` label is read. None when absent or conflicting."""
    before, _ = _split_at_justification(slack_to_plain(text))
    before = re.sub(r"[*_~`]", "", before)
    labelled = _PURPOSE_LABEL.search(before)
    if labelled:
        return parse_purpose(labelled.group(1))
    codes = {c for c in map(_standalone_code, _CLAUSE_BREAK.split(before)) if c}
    return codes.pop() if len(codes) == 1 else None


def read_upload_message(text: str | None, pattern: str = DEFAULT_CALL_NUMBER_PATTERN) -> Answers:
    """Answers already present in the upload message (their dialog steps are skipped). The call number is
    looked for before the `justification:` label, since a justification often cites other case numbers."""
    before, _ = _split_at_justification(slack_to_plain(text))
    return Answers(
        call_number=find_call_number(before, pattern),
        purpose=find_purpose(text),
        justification=find_justification(text),
        attested=False,
    )


def similar_call_numbers(value: str, calls: Iterable[str]) -> list[str]:
    """Calls from `calls` that `value` may be a typo of: one digit different, or two adjacent characters
    swapped (the usual slips on a phone keypad). In the order given, without `value` itself."""
    out = []
    for call in calls:
        if call == value or len(call) != len(value):
            continue
        diff = [i for i, (a, b) in enumerate(zip(value, call)) if a != b]
        one_digit = len(diff) == 1 and value[diff[0]].isdigit() and call[diff[0]].isdigit()
        swapped = (len(diff) == 2 and diff[1] == diff[0] + 1
                   and value[diff[0]] == call[diff[1]] and value[diff[1]] == call[diff[0]])
        if (one_digit or swapped) and call not in out:
            out.append(call)
    return out


START_WORDS = frozenset({"start", "search", "run", "run it", "go", "yes", "ok", "okay", "start search",
                         "run a search", "run search", "search it", "please"})


def is_start(text: str | None) -> bool:
    """A reply to the bot's offer that asks for the search without answering yet ("start", "yes")."""
    return _bare(text) in START_WORDS


CONFIRM_WORDS = frozenset({"yes", "y", "confirm", "confirmed", "correct", "use it", "yes use it", "that's right",
                           "that is right", "right"})


def is_confirmation(text: str | None) -> bool:
    """A reply confirming a call number the bot asked about ("yes", "confirm", "correct")."""
    return _bare(text) in CONFIRM_WORDS
