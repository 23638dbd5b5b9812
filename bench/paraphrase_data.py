"""Synthetic long histories for the paraphrase recall benchmark (bench/paraphrase_recall.py).

A history is a user / assistant conversation of N messages: everyday chit-chat (combinatorial, so
every message is distinct), plus each fact of FACTS told once by the user (at a random point of the
first 80 %) and, for every fact, distractors on its topic, many of them using the very words the
question will use (the trap for word search). The question asks the fact back in other words:
`content_overlap` measures the content words (stemmed as FTS5's Porter tokenizer does) a question
shares with its fact, and `build` reports it (the facts are written so that it is 0).
"""

from __future__ import annotations

import math
import random
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mnemo.memory.search.text import STOP_WORDS


@dataclass(frozen=True)
class Fact:
    statement: str          # with {slot}s, told once by the user
    question: str           # asked back later, in other words
    distractors: tuple[str, ...]   # same topic; most share words with the question
    slots: dict[str, tuple[str, ...]] = field(default_factory=dict)


NAMES = ("Biscuit", "Pepper", "Juniper", "Marlowe", "Tobias", "Rosalind", "Caspian", "Wren", "Ottoline",
         "Fennimore", "Saffron", "Bramble")
CITIES = ("Lisbon", "Tampere", "Ghent", "Bologna", "Leeds", "Kraków", "Porto", "Utrecht", "Aarhus", "Nantes")

FACTS: tuple[Fact, ...] = (
    Fact("We adopted a little beagle last spring and we call him {n}.",
         "What is my dog's name?",
         ("My sister's dog chewed up her sofa again.", "The dog park near the office is closing for repairs."),
         {"n": NAMES}),
    Fact("Started my new gig as a {j} at a clinic on Monday.",
         "What is my profession these days?",
         ("My profession requires a lot of continuing education.", "These days everyone seems to change careers.",
          "I'm thinking about my own profession a lot lately."),
         {"j": ("radiographer", "pharmacist", "physiotherapist", "receptionist", "paramedic")}),
    Fact("I broke out in hives after eating {f}, the doctor says I must avoid it completely.",
         "Which food am I allergic to?",
         ("My cousin is allergic to cats.", "Food at the wedding was lovely.",
          "Allergic reactions in kids can be scary."),
         {"f": ("shellfish", "peanuts", "sesame", "kiwi", "almonds")}),
    Fact("Traded in the old hatchback for a {c} {m} yesterday.",
         "What vehicle do I drive now?",
         ("The vehicle inspection is due next month.", "Now the roads are icy I hate driving.",
          "Electric vehicles are getting cheaper."),
         {"c": ("red", "silver", "navy", "white"), "m": ("Volvo estate", "Skoda Octavia", "Mazda roadster")}),
    Fact("My little brother {n} just turned nineteen.",
         "How old is my younger sibling?",
         ("Sibling rivalry could fill a book in our family.", "The younger players on the team are fast.",
          "My friend's sibling is visiting from abroad."),
         {"n": NAMES}),
    Fact("I was born on the {d} of {m}, same day as my grandad.",
         "When is my birthday?",
         ("We're planning a surprise birthday party for Mia.", "Birthday cakes at that bakery are overpriced.",
          "Birthday cards are so expensive now."),
         {"d": ("third", "ninth", "twelfth", "twentieth"), "m": ("March", "July", "October", "January")}),
    Fact("We moved into a flat in {c} near the river last autumn.",
         "Which town do I live in?",
         ("The town council wants to build a new stadium.", "Live music in town on Friday sounds fun.",
          "I could never live somewhere that cold."),
         {"c": CITIES}),
    Fact("I've reread {b} three times, nothing else comes close.",
         "What is my favorite novel?",
         ("The novel for book club this month is dull.", "My favorite café closed down.",
          "Novel ideas are rare in that industry."),
         {"b": ("Middlemarch", "Dune", "Rebecca", "Beloved", "Persuasion")}),
    Fact("{t} terrify me, I can't even look at a picture of them.",
         "What am I scared of?",
         ("The movie was scary but fun.", "Kids get scared of thunder sometimes.",
          "I was scared the train would be late.", "Scared cats hide under the bed."),
         {"t": ("Spiders", "Snakes", "Wasps", "Clowns", "Pigeons")}),
    Fact("{p} and I got married on a beach in {c} in 2016.",
         "Where did my wedding take place?",
         ("We went to a wedding last weekend, the food was great.", "Wedding dresses cost a fortune.",
          "The meeting will take place online."),
         {"p": NAMES, "c": ("Crete", "Sardinia", "Bali", "Cornwall")}),
    Fact("I've been practising the {i} every evening since January.",
         "Which instrument am I learning?",
         ("Learning a new language is hard at my age.", "The instrument shop on Main Street has a sale.",
          "Learning to cook properly is my goal."),
         {"i": ("cello", "violin", "saxophone", "ukulele", "clarinet")}),
    Fact("I stopped eating meat and fish about two years ago.",
         "What diet do I follow?",
         ("This diet app keeps sending notifications.", "Follow the recipe exactly and it works.",
          "Crash diets never work for anyone.")),
    Fact("Our twins {a} and {b} start kindergarten in September.",
         "What are my children called?",
         ("Children's books are so expensive now.", "The children next door play football outside.",
          "Children need more sleep than adults."),
         {"a": NAMES, "b": ("Ivy", "Otto", "Luna", "Felix")}),
    Fact("Every morning I need a double espresso with oat milk.",
         "How do I take my coffee?",
         ("Coffee prices went up again.", "Take the second left after the bridge.",
          "The coffee at work is terrible.")),
    Fact("I {s} before work three times a week.",
         "What exercise do I do regularly?",
         ("Regularly updating software matters.", "Exercise bikes are on sale this week.",
          "The exercise class was cancelled."),
         {"s": ("swim forty lengths at the pool", "row on the canal with a club", "climb at the bouldering wall")}),
    Fact("I graduated in {s} from Edinburgh back in 2015.",
         "What did I study at college?",
         ("College tuition keeps rising.", "I need to study for my driving test.", "Study groups help a lot."),
         {"s": ("marine biology", "architecture", "philosophy", "chemical engineering")}),
    Fact("Mum grew up on a farm outside {c}.",
         "Where is my mother from originally?",
         ("My mother called to ask about Christmas plans.", "Originally the plan was to leave at noon.",
          "Mother's Day is coming up soon."),
         {"c": CITIES}),
    Fact("The doctor put me on {m} for my blood pressure.",
         "Which pills am I taking for hypertension?",
         ("Taking the bus is cheaper than parking.", "The pills for the cat are in the cupboard.",
          "I keep forgetting to take my vitamins."),
         {"m": ("amlodipine", "ramipril", "losartan")}),
    Fact("Booked two weeks in {c} for August, flights are sorted.",
         "Where am I going on holiday this summer?",
         ("Summer holiday traffic is a nightmare.", "Holiday rentals are so pricey this summer."),
         {"c": ("Japan", "Iceland", "Peru", "Vietnam", "Morocco")}),
    Fact("Everything in my wardrobe is {c}, it just suits me.",
         "What's my favourite colour?",
         ("The colour of the sky this evening was amazing.", "My favourite show got cancelled.",
          "Favourite biscuits? Custard creams."),
         {"c": ("green", "mustard yellow", "burgundy", "teal")}),
    Fact("I'm fluent in {l} because my grandparents raised me.",
         "Which languages do I speak?",
         ("Speak to the manager about the refund.", "Learning languages as an adult is tough.",
          "I'll speak to you tomorrow."),
         {"l": ("Portuguese", "Finnish", "Greek", "Polish", "Tagalog")}),
    Fact("Nothing beats watching {t} win at home on a Saturday.",
         "Which football club do I support?",
         ("The football season starts next month.", "Support tickets at work are piling up.",
          "Football on TV all weekend again."),
         {"t": ("Celtic", "Everton", "Ajax", "Benfica", "Porto")}),
    Fact("My girlfriend {n} and I have been together six years.",
         "Who am I dating?",
         ("Dating apps are exhausting.", "Dating in your thirties is different."),
         {"n": ("Priya", "Hannah", "Chloe", "Amara")}),
    Fact("I cycle twenty kilometres to the office every day.",
         "How do I get to work?",
         ("Work has been stressful lately.", "Getting to work on time is hard in winter.",
          "Work drinks are on Thursday.")),
    Fact("The donor card says I'm {b}, so the hospital keeps asking me to give.",
         "What's my blood type?",
         ("Type the address into the sat nav.", "Blood tests always make me faint."),
         {"b": ("O negative", "AB positive", "B negative")}),
    Fact("Trainers in a {n} fit me perfectly, anything smaller pinches.",
         "What size shoes do I wear?",
         ("Shoes for the kids cost a fortune.", "I wear glasses only for driving.", "Shoe shops are all closing."),
         {"n": ("nine", "ten", "seven", "eleven")}),
    Fact("Honestly I could eat {d} every single night.",
         "What is my favourite meal?",
         ("The meal plan for the week is on the fridge.", "A big meal makes me sleepy."),
         {"d": ("mushroom risotto", "chicken katsu curry", "lamb tagine", "pad thai")}),
    Fact("Grandma turns {n} next week, we're throwing her a party.",
         "How old is my grandmother?",
         ("My grandmother's recipes are the best.", "Old houses are so draughty.",
          "My friend's grandmother still drives."),
         {"n": ("ninety", "eighty-five", "ninety-two")}),
    Fact("I spend most weekends restoring {t} in the garage.",
         "What's my hobby?",
         ("A hobby can really help with stress.", "Knitting is such a relaxing hobby.",
          "My neighbour's hobby is loud."),
         {"t": ("vintage motorbikes", "old radios", "antique clocks", "rusty bicycles")}),
    Fact("I must have watched {m} twenty times.",
         "Which film do I love most?",
         ("The film festival starts on Thursday.", "I love rainy afternoons.", "Love songs on the radio all day."),
         {"m": ("Casablanca", "Jaws", "Amélie", "Paddington 2", "Alien")}),
    Fact("Fractured my left wrist snowboarding in {y}.",
         "Have I ever broken a bone?",
         ("The dog broke a bone chewing toy.", "Broken phone screens are so expensive to fix.",
          "Bone broth is popular right now."),
         {"y": ("2012", "2018", "2020")}),
    Fact("We finally got the keys to our three-bedroom semi in {c}.",
         "Where is the house I purchased?",
         ("House prices are crazy right now.", "I purchased a new kettle online.",
          "The house next door is for sale."),
         {"c": CITIES}),
    Fact("Everyone at school used to shout {n} at me in the corridors.",
         "What was my childhood nickname?",
         ("Childhood memories get fuzzy.", "My nickname at work is embarrassing.", "Nicknames can be cruel."),
         {"n": ("Noodle", "Sparky", "Beans", "Twiglet")}),
    Fact("Dr {n} on Mill Lane does my fillings and check-ups.",
         "Who takes care of my teeth?",
         ("Teeth whitening is a waste of money.", "Care homes are so understaffed.",
          "My kid's teeth are coming through."),
         {"n": ("Okafor", "Lindqvist", "Moreau", "Patel")}),
    Fact("The guy next door, {n}, plays drums at midnight.",
         "Who is my neighbour?",
         ("My neighbour's cat sleeps on our car.", "Neighbours should be more considerate.",
          "Our neighbour lent us a ladder."),
         {"n": ("Gareth", "Dmitri", "Lorenzo", "Kwame")}),
    Fact("Putting aside {a} a month for a deposit on a flat.",
         "How much money am I saving?",
         ("Saving energy in winter is hard.", "Money is tight this month.", "Saving recipes on my phone helps."),
         {"a": ("four hundred pounds", "six hundred pounds", "a thousand pounds")}),
    Fact("Red wine gives me migraines, so I stick to white.",
         "Which drinks cause me headaches?",
         ("Headaches from screens are common.", "Energy drinks are bad for teenagers.")),
    Fact("Got a small {t} inked on my ankle for my thirtieth.",
         "What tattoo do I have?",
         ("Tattoo removal is painful.", "Her tattoo artist is booked for months."),
         {"t": ("swallow", "compass", "lemon", "paper crane")}),
    Fact("Without contact lenses I can't see anything past my hand.",
         "Is my eyesight poor?",
         ("Poor service at the hotel again.", "Eyesight tests are free for kids.", "The poor dog was soaked.")),
    Fact("Saw {b} live four times, I know every lyric.",
         "Which band am I a fan of?",
         ("The fan in my bedroom is broken.", "I'm not a fan of cold weather.", "The band at the wedding was great."),
         {"b": ("Radiohead", "Fleetwood Mac", "Arctic Monkeys", "ABBA")}),
    Fact("Before this I spent eight years as a {j} in the navy.",
         "What was my military career?",
         ("Military history podcasts are my thing.", "Career fairs are so awkward.",
          "My career plans changed a lot."),
         {"j": ("submariner", "marine engineer", "helicopter pilot")}),
    Fact("My locker at the gym opens with {c}.",
         "What's the combination for my storage box at the fitness centre?",
         ("The fitness centre is closed on Sunday.", "Storage boxes are on offer.", "The centre of town is busy."),
         {"c": ("4471", "9023", "1588", "6302")}),
    Fact("I'm the oldest of five, three sisters and a brother.",
         "How big is my family?",
         ("Big family gatherings stress me out.", "My family loves board games.", "The family next door moved out.")),
    Fact("Our cat {n} is a grumpy ginger tom who hates the vet.",
         "What pets do I have?",
         ("Pets are expensive to insure.", "The pet shop closed down.", "Pets should not be left in hot cars."),
         {"n": ("Marmalade", "Rufus", "Tiger", "Custard")}),
)

OPENERS = ("Honestly,", "So", "Anyway,", "Funny thing,", "Ugh,", "Guess what,", "By the way,", "Well,",
           "Right,", "Oh,", "Just saying,", "Quick update:", "Random thought:", "Not gonna lie,", "Okay so")
SUBJECTS = ("I", "we", "my friend", "the kids", "my colleague", "my partner", "our team", "my aunt",
            "my flatmate", "the neighbours", "my boss", "my cousin")
ACTIVITIES = (
    "tried the new ramen place", "watched a documentary about octopuses", "repainted the fence",
    "went to a pub quiz", "cleaned out the loft", "did a long walk along the coast path", "baked sourdough",
    "fixed the leaking tap", "sat in traffic for an hour", "started a jigsaw puzzle", "binged a crime drama",
    "went to a car boot sale", "planted tomatoes", "had a video call with the group", "assembled flat-pack shelves",
    "went to the farmers market", "sorted the recycling", "watched the rugby", "went to a pottery class",
    "reorganised the spice rack", "visited a castle", "got caught in a hailstorm", "tried paddleboarding",
    "made a huge lasagne", "went to a comedy night", "cleared the gutters", "played board games all night",
    "went strawberry picking", "tidied the garden shed", "went to the cinema", "renewed the insurance",
    "queued at the post office", "went to a barbecue", "read about black holes", "finished a crossword",
)
TIMES = ("this morning", "last night", "on Sunday", "yesterday", "over the weekend", "after lunch",
         "on Tuesday", "earlier today", "at the weekend", "before dinner", "on the bank holiday", "last week")
COMMENTS = (
    "It was better than expected.", "Not sure I'd do it again.", "Took ages but worth it.",
    "Everyone was in a good mood.", "The weather could have been kinder.", "I'm shattered now.",
    "We laughed the whole time.", "It cost more than planned.", "Would recommend.", "Pretty average really.",
    "Could have gone worse.", "Definitely doing that again.", "Nobody else seemed bothered.",
    "It rained halfway through.", "Fun, but exhausting.", "Bit of a disaster honestly.",
    "I took loads of photos.", "Felt like a proper achievement.", "Glad that's done.", "Strange but nice.",
)
REPLIES = ("That sounds", "Sounds", "Oh that sounds", "Ha, that sounds", "Wow, that sounds", "Hmm, sounds")
MOODS = ("lovely", "like a lot of fun", "exhausting", "relaxing", "like quite the day", "great", "hectic",
         "nice", "chaotic", "brilliant", "tiring", "pleasant", "eventful", "fun", "peaceful")
FOLLOWUPS = ("How did everyone find it?", "Would you go back?", "Did you get some rest afterwards?",
             "What was the best part?", "Anything you'd change next time?", "Was it busy?",
             "Did it take long?", "Tell me more!", "Glad you enjoyed it.", "Hope the rest of the week is calmer.",
             "Fingers crossed for better weather next time.", "That's one thing off the list!")
ACKS = ("Thanks for telling me, I'll remember that.", "Good to know!", "Noted, thanks for sharing.",
        "Oh nice, thanks for letting me know.", "I'll keep that in mind.", "Got it.")


@dataclass
class Message:
    id: str
    role: str
    text: str
    created_at: datetime


@dataclass
class Question:
    text: str
    answer_id: str
    overlap: int


@dataclass
class History:
    messages: list[Message]
    questions: list[Question]
    distractors: int


def _chat(rng: random.Random) -> tuple[str, str]:
    user = (f"{rng.choice(OPENERS)} {rng.choice(SUBJECTS)} {rng.choice(ACTIVITIES)} {rng.choice(TIMES)}."
            f" {rng.choice(COMMENTS)}")
    return user, f"{rng.choice(REPLIES)} {rng.choice(MOODS)}. {rng.choice(FOLLOWUPS)}"


def _distractor(rng: random.Random, text: str, variant: int) -> str:
    if variant == 0:
        return text
    return f"{rng.choice(OPENERS)} {text[0].lower()}{text[1:]} {rng.choice(COMMENTS)}"


def build(size: int, seed: int = 17) -> History:
    """A history of `size` messages (user and assistant alternating) with every fact told once."""
    rng = random.Random(seed * 1_000_003 + size)
    variants = max(1, round(math.log10(size)) - 2)   # copies of each distractor line: 1, 2, 3 at 1k, 10k, 100k
    facts = [(i, f, f.statement.format(**{k: rng.choice(v) for k, v in f.slots.items()}))
             for i, f in enumerate(FACTS)]
    specials: list[tuple[str, str, int | None]] = []   # (user text, reply, fact index)
    for i, f, stated in facts:
        specials.append((stated, rng.choice(ACKS), i))
        for line in f.distractors:
            for v in range(variants):
                specials.append((_distractor(rng, line, v), f"{rng.choice(REPLIES)} {rng.choice(MOODS)}.", None))
    pairs = size // 2
    if len(specials) > pairs:
        raise ValueError(f"{size} messages cannot hold {len(specials)} facts and distractors")
    slots = rng.sample(range(int(pairs * 0.8)), len([s for s in specials if s[2] is not None]))
    rest = rng.sample(sorted(set(range(pairs)) - set(slots)), len(specials) - len(slots))
    placed = dict(zip(slots + rest, [s for s in specials if s[2] is not None]
                      + [s for s in specials if s[2] is None], strict=True))
    messages: list[Message] = []
    answers: dict[int, str] = {}
    when = datetime(2024, 1, 1, 9, tzinfo=UTC)
    seen: set[str] = set()
    for p in range(pairs):
        when += timedelta(minutes=rng.randint(2, 240))
        if p in placed:
            user, reply, fact = placed[p]
        else:
            user, reply, fact = *_chat(rng), None
            while user in seen:
                user, reply = _chat(rng)
        seen.add(user)
        uid = f"m{2 * p}"
        messages.append(Message(uid, "user", user, when))
        messages.append(Message(f"m{2 * p + 1}", "assistant", reply, when + timedelta(seconds=30)))
        if fact is not None:
            answers[fact] = uid
    stated = {i: s for i, _, s in facts}
    questions = [Question(f.question, answers[i], content_overlap(f.question, stated[i])) for i, f, _ in facts]
    return History(messages, questions, sum(1 for s in specials if s[2] is None))


_STEMMER: sqlite3.Connection | None = None


def _stems(text: str) -> set[str]:
    """The Porter stems FTS5 indexes `text` under, less stop words."""
    global _STEMMER
    if _STEMMER is None:
        _STEMMER = sqlite3.connect(":memory:")
        _STEMMER.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61')")
        _STEMMER.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")
    db = _STEMMER
    db.execute("DELETE FROM t")
    words = " ".join(w for w in text.lower().replace("'", " ").split() if w.strip(".,?!") not in STOP_WORDS)
    db.execute("INSERT INTO t(x) VALUES (?)", (words,))
    return {r[0] for r in db.execute("SELECT term FROM v")}


def content_overlap(question: str, statement: str) -> int:
    """Content words (Porter stems, stop words dropped) shared by a question and its fact."""
    return len(_stems(question) & _stems(statement))
