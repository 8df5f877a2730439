"""What an emoji is: its CLDR name in natural English and the attributes kept for evaluation.

Everything comes from the `emoji` package's ``EMOJI_DATA`` (the CLDR short names, such as
``:woman_medium-dark_skin_tone_red_hair:``, and each sequence's status) and from the code
points themselves:

    skin tone   the modifiers U+1F3FB..U+1F3FF (light, medium-light, medium, medium-dark, dark)
    hair        the components U+1F9B0..U+1F9B3 (red, curly, bald, white), or "blond" in the name
    gender      a ZWJ female or male sign (U+2640, U+2642), or the words of the name
    base        the same emoji without skin tones: the untoned emoji of the same name
    category    flags by their code points (and the eight flag emoji by name); people by
                tone, hair or gender, or an emoji that takes a skin tone; the rest by the
                words of the name (``CATEGORY_WORDS``), "objects" when no word is listed

The categories follow Unicode's emoji groups loosely (``CATEGORY_WORDS``); they are kept
simple rather than exact, for grouping results, not for checking a model.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

TONES = {"\U0001F3FB": "light", "\U0001F3FC": "medium-light", "\U0001F3FD": "medium",
         "\U0001F3FE": "medium-dark", "\U0001F3FF": "dark"}
HAIR = {"\U0001F9B0": "red", "\U0001F9B1": "curly", "\U0001F9B2": "bald", "\U0001F9B3": "white"}
HAIR_STYLES = ("red", "curly", "white", "bald", "blond")
PERSONS = ("man", "woman", "person")  # who the hair emoji show
FEMALE_SIGN, MALE_SIGN, ZWJ = "\u2640", "\u2642", "\u200d"
TEMPLATES = ("{}", "an emoji of {}", "{} emoji", "a picture of {}")  # the first: the plain caption

_TONE_WORDS = re.compile(r"_?(medium-light|medium-dark|light|medium|dark)_skin_tone")
_FEMALE = {"woman", "women", "girl", "princess", "Mrs.", "mermaid"}
_MALE = {"man", "men", "boy", "prince", "Santa", "merman"}
_NEUTRAL = {"person", "people", "adult", "child", "baby", "Mx."}
_PLURALS = {"man": "men", "woman": "women", "person": "people", "adult": "adults", "child": "children",
            "boy": "boys", "girl": "girls"}
_COUNTS = {1: "a", 2: "two", 3: "three", 4: "four"}
_NO_ARTICLE = {"two", "people", "men", "women", "children", "hundred", "Japanese", "Mrs.", "Mx", "Santa"}
_PREPOSITIONS = {"with", "of", "in", "on", "for", "at", "from", "and", "without", "under", "over"}
_THE_COUNTRIES = {"Islands", "Republic", "United", "States", "Kingdom", "Netherlands", "Bahamas", "Philippines",
                  "Gambia", "Maldives", "Seychelles", "Comoros", "Emirates", "Union", "Nations", "Isle"}
_ZODIAC = {"Aries", "Taurus", "Gemini", "Cancer", "Leo", "Virgo", "Libra", "Scorpio", "Sagittarius", "Capricorn",
           "Aquarius", "Pisces", "Ophiuchus"}

# A word of the name (split at "_" and "-"), a pair of words ("baby_bottle") or the whole name
# -> its category. A name with "face" is an animal's face or a smiley; any other takes the first
# category in this order whose list holds the whole name or a pair of its words, else the first
# that holds one of its words, else "objects".
CATEGORY_WORDS = {
    "food": "grapes melon watermelon tangerine lemon lime banana pineapple mango apple pear peach cherries "
            "strawberry blueberries kiwi tomato olive coconut avocado eggplant potato carrot corn pepper "
            "cucumber leafy broccoli garlic onion peanuts beans chestnut ginger pea bread croissant baguette "
            "flatbread pretzel bagel pancakes waffle cheese meat poultry bacon hamburger fries pizza hot_dog "
            "sandwich taco burrito tamale stuffed falafel egg cooking pot fondue bowl salad popcorn butter salt "
            "canned bento rice cracker curry ramen spaghetti sweet oden sushi fried fish_cake moon_cake dango "
            "dumpling fortune takeout cream shaved_ice doughnut cookie birthday cake shortcake cupcake pie chocolate "
            "candy lollipop custard honey baby_bottle milk coffee tea teapot sake champagne wine cocktail "
            "tropical_drink beer beers clinking tumbler pouring cup bubble_tea beverage mate chopsticks fork "
            "spoon knife jar amphora drink root pickle",
    "animals": "dog cat monkey gorilla orangutan wolf fox raccoon lion tiger leopard horse unicorn zebra deer bison "
               "cow ox buffalo pig boar ram ewe goat camel llama giraffe elephant mammoth rhinoceros hippopotamus "
               "mouse rat hamster rabbit chipmunk beaver hedgehog bat bear koala panda sloth otter skunk kangaroo "
               "badger turkey chicken rooster chick bird penguin dove eagle duck swan owl dodo feather flamingo "
               "peacock parrot goose wing frog crocodile turtle lizard snake dragon sauropod T-Rex whale dolphin "
               "seal fish tropical blowfish shark octopus shell coral jellyfish snail butterfly bug ant honeybee "
               "beetle cricket cockroach spider scorpion mosquito fly worm microbe moose donkey poodle orca "
               "paw shrimp squid lobster crab oyster phoenix hairy_creature",
    "smileys": "smiling grinning hugging laughing skull ghost alien robot poo clown ogre goblin heart hearts "
               "kiss_mark anger collision dizzy sweat droplets speech thought ZZZ hole star-struck exploding "
               "shaking",
    "travel": "car automobile taxi bus trolleybus minibus ambulance fire_engine police truck lorry tractor racing "
              "motorcycle scooter bicycle skateboard roller stop fuel tire wheel train railway locomotive tram "
              "metro station monorail helicopter airplane seat rocket satellite saucer ship boat canoe speedboat "
              "ferry sailboat anchor building house houses office hospital bank hotel school castle church mosque "
              "temple synagogue shrine kaaba fountain tent city cityscape bridge carousel ferris roller_coaster "
              "stadium map compass desert island beach camping park factory post wedding construction derelict "
              "brick rock wood hut classical tower Tokyo Statue Liberty stone night sunrise sunset dusk hourglass "
              "watch clock alarm stopwatch timer mantelpiece o’clock thirty vehicle tramway light_rail motorway "
              "rickshaw traffic store worship mount_fuji moai carousel_horse",
    "nature": "bouquet cherry blossom flower lotus rosette rose wilted hibiscus sunflower tulip hyacinth seedling "
              "tree palm cactus sheaf herb shamrock four_leaf leaf leaves fallen maple nest empty mushroom plant "
              "sun moon star stars cloud clouds rain snow snowflake snowman lightning tornado fog foggy wind "
              "rainbow umbrella fire droplet wave comet globe earth volcano mountain cyclone high_voltage meteor "
              "milky_way ringed",
    "activities": "jack-o-lantern Christmas fireworks sparkler firecracker sparkles balloon party confetti tanabata "
                  "pine dolls carp wind_chime moon_viewing ribbon gift reminder ticket tickets medal "
                  "trophy soccer baseball softball basketball volleyball football rugby tennis flying_disc bowling "
                  "hockey lacrosse ping badminton boxing martial goal flag_in_hole golf ice_skate "
                  "fishing diving running skis sled curling bullseye yo-yo kite pistol pool crystal magic video "
                  "joystick slot die puzzle teddy piñata mirror_ball nesting spade club joker mahjong playing "
                  "performing framed palette thread sewing yarn knot game cricket_game",
    "people": "person people man men woman women boy girl baby child adult family kiss couple hand hands finger "
              "fingers fist thumbs palm palms nail ear eye eyes mouth lips tongue tooth bone brain lungs "
              "anatomical leg foot footprints silhouette speaking zombie genie troll vampire mage fairy elf "
              "ninja superhero supervillain skier snowboarder",
    "symbols": "sign symbol button arrow arrows keycap mark square circle triangle diamond exclamation "
               "question plus minus multiply divide equals infinity copyright registered trade recycling check "
               "cross radio prohibited no peace yin om wheel atom radioactive biohazard shuffle repeat play pause "
               "record eject cinema dim bright antenna vibration mobile_phone_off female male medical "
               "fleur-de-lis trident name beginner hollow loop curly dollar currency exchange heavy wavy "
               "part_alternation eight-spoked eight-pointed sparkle asterisk hundred information input circled "
               "baggage_claim customs passport_control left_luggage children_crossing potable water restroom "
               "men’s_room women’s_room water_closet warning " + " ".join(sorted(_ZODIAC)),
    "objects": "computer_mouse mouse_trap",  # names that the words above would place elsewhere
}
FLAG_NAMES = {"chequered_flag", "triangular_flag", "crossed_flags", "black_flag", "white_flag", "rainbow_flag",
              "transgender_flag", "pirate_flag"}
_CATEGORY_WORDS = {category: set(words.split()) for category, words in CATEGORY_WORDS.items()}


@dataclass(frozen=True)
class EmojiInfo:
    """One fully-qualified emoji: what it is, what its caption says, and what is kept for evaluation."""

    emoji: str  # the code point sequence
    name: str  # the CLDR short name as the `emoji` package spells it, without colons
    base: str  # the emoji without skin tones (itself when it has none)
    base_name: str
    skin_tone: str | None  # "medium-dark"; two different tones as "light/dark"; None without one
    hair: str | None  # one of HAIR_STYLES
    person: str | None  # "man", "woman" or "person" for the hair emoji, else None
    gender: str | None  # "female", "male", "mixed", "neutral" (a person of no stated gender), None (no person)
    category: str  # "flags", "people", one of CATEGORY_WORDS, or "objects"
    phrase: str  # the plain English caption: "a woman with red hair, medium-dark skin tone"

    @property
    def tones(self) -> tuple[str, ...]:
        """The distinct skin tones, in order: ``()``, ``("dark",)`` or ``("light", "dark")``."""
        return tuple(self.skin_tone.split("/")) if self.skin_tone else ()

    def attributes(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "phrase"}


@lru_cache(maxsize=1)
def all_emoji() -> tuple[EmojiInfo, ...]:
    """Every fully-qualified emoji the `emoji` package knows, sorted by name."""
    import emoji  # here: its ~5,000-entry table is read when the dataset is built, not when plugins load

    qualified = {e: d["en"].strip(":") for e, d in emoji.EMOJI_DATA.items()
                 if d["status"] == emoji.STATUS["fully_qualified"]}
    untoned = {name: e for e, name in qualified.items() if not any(t in e for t in TONES)}
    toneable = {_TONE_WORDS.sub("", name) for e, name in qualified.items() if any(t in e for t in TONES)}
    return tuple(sorted((describe(e, name, untoned, toneable) for e, name in qualified.items()),
                        key=lambda info: info.name))


def describe(e: str, name: str, untoned: dict[str, str], toneable: set[str]) -> EmojiInfo:
    """The ``EmojiInfo`` of emoji ``e`` named ``name``; ``untoned`` maps the names of the emoji
    without skin tones to them, ``toneable`` holds the names of those that take one."""
    tones = list(dict.fromkeys(TONES[c] for c in e if c in TONES))
    base_name = _TONE_WORDS.sub("", name)
    base = untoned.get(base_name, "".join(c for c in e if c not in TONES))
    words = base_name.split("_")
    hair = next((HAIR[c] for c in e if c in HAIR), "blond" if "blond" in words else None)
    person = next((w for w in words if w in PERSONS), None) if hair else None
    gender = _gender(e, words)
    flag = is_flag(e)
    category = "flags" if flag or base_name in FLAG_NAMES else \
        "people" if tones or hair or gender or base_name in toneable else _category(base_name)
    phrase = english(base_name, flag=flag)
    if tones:
        phrase += f", {tones[0]} skin tone" if len(tones) == 1 else f", {' and '.join(tones)} skin tones"
    return EmojiInfo(e, name, base, base_name, "/".join(tones) or None, hair, person, gender, category, phrase)


def is_flag(e: str) -> bool:
    """A country or region flag: two regional indicators, or a black flag with tag characters."""
    return all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in e) or (e[0] == "\U0001F3F4" and len(e) > 2)


def english(name: str, *, flag: bool = False) -> str:
    """A CLDR short name (without skin tones) in natural English: "woman_red_hair" -> "a woman
    with red hair", "dog_face" -> "a dog face", a country flag "France" -> "the flag of France"."""
    words = name.split("_")
    text = " ".join(words)
    if flag:
        return f"the flag of {'the ' if _THE_COUNTRIES & set(words) else ''}{text}"
    if text in _ZODIAC:
        return f"the zodiac sign {text}"
    if match := re.fullmatch(r"(.+) (red|curly|white|blond) hair", text):
        return f"{with_article(match[1])} with {match[2]} hair"
    if match := re.fullmatch(r"(.+) bald", text):
        return with_article(f"bald {match[1]}")
    if match := re.fullmatch(r"(.+) beard", text):
        return f"{with_article(match[1])} with a beard"
    if match := re.fullmatch(r"keycap (.+)", text):
        return f"a keycap showing {match[1]}"
    if match := re.fullmatch(r"(family|kiss|couple with heart) (.+)", text):
        members = match[2].split()
        if set(members) <= set(_PLURALS):
            group = _group(members)
            if match[1] == "kiss":
                return f"{group} kissing"
            return f"a family of {group}" if match[1] == "family" else f"a couple with a heart, {group}"
    return with_article(text)


def with_article(text: str) -> str:
    """``text`` with "a", "an" or no article, as English puts one before it."""
    words = text.split()
    if words[0] in _NO_ARTICLE or _is_plural(_head(words)):
        return text
    first = words[0]
    vowel = first[0].lower() in "aeiou" and not first.lower().startswith(("uni", "use", "one", "eu", "ewe"))
    return f"{'an' if vowel or first in {'hour', 'hourglass', 'NG', 'SOS'} else 'a'} {text}"


def _head(words: list[str]) -> str:
    """The noun an article agrees with: the last word before a preposition or an -ing verb."""
    for i, word in enumerate(words[1:], 1):
        if word in _PREPOSITIONS or word.endswith("ing"):
            return words[i - 1]
    return words[-1]


def _is_plural(word: str) -> bool:
    return word in _PLURALS.values() or (word.endswith("s") and not word.endswith(("ss", "us", "is", "’s")))


def _group(members: list[str]) -> str:
    """["man", "woman", "girl"] -> "a man, a woman and a girl"; ["adult", "adult", "child"]
    -> "two adults and a child"."""
    counted = {m: members.count(m) for m in dict.fromkeys(members)}
    parts = [f"{_COUNTS[n]} {m if n == 1 else _PLURALS[m]}" for m, n in counted.items()]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _gender(e: str, words: list[str]) -> str | None:
    signs = {"female"} if FEMALE_SIGN in e else {"male"} if MALE_SIGN in e else set()
    found = signs if ZWJ in e else set()  # the signs alone are symbols
    found |= {"female" for w in words if w in _FEMALE} | {"male" for w in words if w in _MALE}
    if len(found) == 2:
        return "mixed"
    if found:
        return found.pop()
    return "neutral" if _NEUTRAL & set(words) else None


def _category(name: str) -> str:
    """The category of an emoji that is neither a flag nor a person, by the words of its name."""
    words = re.split(r"[_-]", name)
    pairs = {name, *(f"{a}_{b}" for a, b in pairwise(words))}
    if "face" in words:
        return "animals" if _CATEGORY_WORDS["animals"] & {*words, *pairs} else "smileys"
    for found in (pairs, {*words, *name.split("_")}):  # a pair of words says more than one word
        if category := next((c for c, known in _CATEGORY_WORDS.items() if known & found), None):
            return category
    return "objects"
