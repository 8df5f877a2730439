"""Write the prompt files `toolkit eval --prompts` scores the emoji models on:

    plugins/builtin/datasets/emoji/prompts/emoji-names.jsonl        320 training emoji by their plain English names
    plugins/builtin/datasets/emoji/prompts/emoji-heldout.jsonl      every test emoji: a skin tone or hair style never
                                                                    seen on that emoji or person in training
    plugins/builtin/datasets/emoji/prompts/emoji-paraphrases.jsonl  what a person would type instead (PARAPHRASES),
                                                                    each with the emoji's caption it is scored against
    plugins/builtin/datasets/emoji/prompts/emoji-tuning.jsonl       70 other training emoji (50 by name, 20 as "a picture
                                                                    of ..."): settings such as the guidance scale are
                                                                    chosen on these, never on the three above

Deterministic: `python docs/make_emoji_prompts.py` rewrites the same files (it needs the
Noto Color Emoji font, to know which emoji are drawable and in which split).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from toolkit_plugins.datasets.emoji import EmojiDataset, all_emoji

OUT = Path(__file__).resolve().parent.parent / "plugins" / "builtin" / "datasets" / "emoji" / "prompts"
NAMES = 320

# (what a person might type, the CLDR name of the emoji it means). Written by hand: words and
# phrasings that are not the emoji's own caption.
PARAPHRASES = [
    ("a puppy", "dog_face"), ("a cute doggy", "dog_face"), ("a kitten", "cat_face"), ("a kitty cat", "cat_face"),
    ("thumbs up, dark skin", "thumbs_up_dark_skin_tone"), ("a like, light skin", "thumbs_up_light_skin_tone"),
    ("thumbs down", "thumbs_down"), ("the french flag", "France"), ("flag of japan", "Japan"),
    ("the american flag", "United_States"), ("german flag", "Germany"), ("the italian flag", "Italy"),
    ("brazilian flag", "Brazil"), ("the canadian flag", "Canada"), ("ukrainian flag", "Ukraine"),
    ("pride flag", "rainbow_flag"), ("an astronaut", "astronaut"), ("a spacewoman", "woman_astronaut"),
    ("a spaceman", "man_astronaut"), ("a love heart", "red_heart"), ("a big smile", "grinning_face"),
    ("laughing so hard I cry", "face_with_tears_of_joy"), ("lol", "face_with_tears_of_joy"), ("poop", "pile_of_poo"),
    ("a slice of pizza", "pizza"), ("a spaceship", "rocket"), ("cool guy with shades", "smiling_face_with_sunglasses"),
    ("flames", "fire"), ("lit", "fire"), ("a spooky ghost", "ghost"), ("a magical horse with a horn", "unicorn"),
    ("hello, waving, light skin", "waving_hand_light_skin_tone"), ("bye bye", "waving_hand"),
    ("a xmas tree", "Christmas_tree"), ("sunshine", "sun"), ("a snow man", "snowman"), ("a rainbow in the sky", "rainbow"),
    ("hmm, thinking", "thinking_face"), ("sobbing", "loudly_crying_face"), ("a sad crying face", "crying_face"),
    ("a cowboy", "cowboy_hat_face"), ("a robot head", "robot"), ("a little green alien", "alien"),
    ("a space invader", "alien_monster"), ("a skeleton head", "skull"), ("a pirate flag", "pirate_flag"),
    ("a clown", "clown_face"), ("confetti", "party_popper"), ("a party face with a hat", "partying_face"),
    ("birthday cake with candles", "birthday_cake"), ("a muffin", "cupcake"), ("a pint of beer", "beer_mug"),
    ("cheers", "clinking_beer_mugs"), ("a yellow banana", "banana"), ("an apple", "red_apple"),
    ("a slice of watermelon", "watermelon"), ("guacamole fruit", "avocado"), ("a mexican taco", "taco"),
    ("a burger", "hamburger"), ("chips", "french_fries"), ("sushi roll", "sushi"), ("a boiled egg", "egg"),
    ("an aubergine", "eggplant"), ("a bike", "bicycle"), ("a plane", "airplane"), ("a home", "house"),
    ("a desert cactus", "cactus"), ("a red rose", "rose"), ("a crescent", "crescent_moon"),
    ("a shining star", "glowing_star"), ("an umbrella in the rain", "umbrella_with_rain_drops"),
    ("snow crystal", "snowflake"), ("thunderstorm", "cloud_with_lightning_and_rain"), ("a stack of books", "books"),
    ("an electric guitar", "guitar"), ("a football", "soccer_ball"), ("basketball ball", "basketball"),
    ("a gold cup", "trophy"), ("a gold medal", "1st_place_medal"), ("a king's crown", "crown"),
    ("spectacles", "glasses"), ("a photo camera", "camera"), ("a smartphone", "mobile_phone"),
    ("a laptop", "laptop"), ("an idea", "light_bulb"), ("a bag of cash", "money_bag"), ("a present", "wrapped_gift"),
    ("a party balloon", "balloon"), ("a pony", "horse_face"), ("a cow's head", "cow_face"), ("a piggy", "pig_face"),
    ("a chimp", "monkey_face"), ("see no evil", "see-no-evil_monkey"), ("a panda bear", "panda"),
    ("a red fox", "fox"), ("a lion's head", "lion"), ("a tiger's head", "tiger_face"), ("a toad", "frog"),
    ("a penguin bird", "penguin"), ("an owl bird", "owl"), ("an eight-armed sea creature", "octopus"),
    ("a whale spraying water", "spouting_whale"), ("a shark fin", "shark"), ("a tortoise", "turtle"),
    ("a serpent", "snake"), ("a bee", "honeybee"), ("a blue butterfly", "butterfly"), ("a bunny", "rabbit_face"),
    ("a teddy bear face", "bear"), ("a koala bear", "koala"), ("a baby chicken", "baby_chick"),
    ("an elephant with a trunk", "elephant"), ("a giraffe head", "giraffe"), ("the undead", "zombie"),
    ("dracula", "vampire"), ("a ninja warrior", "ninja"), ("a chef", "cook"), ("a doctor", "health_worker"),
    ("a nurse, woman", "woman_health_worker"), ("a farmer with a hat", "farmer"), ("a school teacher", "teacher"),
    ("a fireman", "man_firefighter"), ("an airline pilot", "pilot"), ("a wizard", "mage"),
    ("a fairy with wings", "fairy"), ("a superhero in a cape", "superhero"), ("a detective, medium skin", "detective_medium_skin_tone"),
    ("a builder", "construction_worker"), ("a newborn", "baby"), ("kissing lips", "kiss_mark"),
    ("applause", "clapping_hands"), ("okay hand sign", "OK_hand"), ("peace sign", "victory_hand"),
    ("praying hands", "folded_hands"), ("a flexed bicep", "flexed_biceps"), ("a fist in the air", "raised_fist"),
    ("a brain", "brain"), ("looking eyes", "eyes"), ("in love", "smiling_face_with_heart-eyes"),
    ("a winking face", "winking_face"), ("an angry face", "angry_face"), ("a sleepy face", "sleeping_face"),
    ("a woman with red hair, dark skin", "woman_dark_skin_tone_red_hair"), ("a bald man", "man_bald"),
    ("a man with a beard", "man_beard"), ("a ginger man", "man_red_hair"), ("a grey-haired woman", "woman_white_hair"),
    ("a police officer, dark skin", "police_officer_dark_skin_tone"), ("a programmer", "technologist"),
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    train, test = EmojiDataset("train", size=64), EmojiDataset("test", size=64)
    by_name = {info.name: info for info in all_emoji()}
    drawable = {info.emoji for info in train.items + test.items}

    picks = np.random.default_rng(2025).choice(len(train.items), NAMES, replace=False)
    names = [{"prompt": train.items[i].phrase, "group": "training names"} for i in sorted(picks)]
    heldout = [{"prompt": info.phrase,
                "group": "held-out hair" if (info.person, info.hair) in test.heldout_hair else "held-out skin tone"}
               for info in test.items]
    paraphrases = []
    for prompt, name in PARAPHRASES:
        info = by_name[name]  # a KeyError here is a typo in PARAPHRASES
        if info.emoji not in drawable:
            raise SystemExit(f"{name} is not drawn by this font; choose another emoji")
        group = "paraphrases (held-out emoji)" if info in test.items else "paraphrases"
        paraphrases.append({"prompt": prompt, "caption": info.phrase, "group": group})
    named = {entry["prompt"] for entry in names}
    rest = [info for info in train.items if info.phrase not in named]
    tuning = [{"prompt": rest[i].phrase if k < 50 else f"a picture of {rest[i].phrase}", "caption": rest[i].phrase,
               "group": "tuning: names" if k < 50 else "tuning: template"}
              for k, i in enumerate(np.random.default_rng(7).choice(len(rest), 70, replace=False))]
    for filename, entries in (("emoji-names", names), ("emoji-heldout", heldout), ("emoji-paraphrases", paraphrases),
                              ("emoji-tuning", tuning)):
        path = OUT / f"{filename}.jsonl"
        path.write_text("".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries), encoding="utf-8")
        print(f"{path}: {len(entries)} prompts")


if __name__ == "__main__":
    main()
