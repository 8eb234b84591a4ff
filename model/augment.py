"""Short labelled sentences that show the network how negation and contrast compose.

IMDB's reviews are long, and in them a plain "not good" is rare next to everything else a review
says: trained on them alone, the network learnt "good" as a positive word and barely read the "not"
before it (docs/model-card.md, the behaviour suite). These sentences state a judgement about a film
in one of a few ways a reader composes without thinking (a word, a negated word, a judgement turned
by "but", an expectation denied at the end) and carry the label that composition gives. They are
added to the training split only (``augment_sentences``), never to validation or test.

Everything here is this module's own: its grammar and word lists were written for training and do
not come from the behaviour suite (benchmarks/behaviour_templates.py), which scores the model on
templates the training never saw. Generation is seeded and needs nothing but the standard library.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

POSITIVE, NEGATIVE = 1, 0

# Judgements of a film or of a part of it, one word each.
GOOD = ("good", "great", "fine", "nice", "excellent", "wonderful", "brilliant", "amazing", "superb",
        "fantastic", "enjoyable", "entertaining", "fun", "funny", "clever", "smart", "beautiful", "lovely",
        "moving", "touching", "gripping", "engaging", "compelling", "charming", "memorable", "impressive",
        "solid", "strong", "fresh", "original", "exciting", "thrilling", "powerful", "perfect", "masterful",
        "worthwhile", "watchable", "likeable", "satisfying", "delightful", "haunting", "witty", "stunning",
        "heartfelt", "riveting", "absorbing", "terrific", "marvellous", "inspired", "sharp")
BAD = ("bad", "awful", "terrible", "horrible", "dreadful", "boring", "dull", "tedious", "tiresome", "weak",
       "poor", "lame", "stupid", "silly", "dumb", "pointless", "mediocre", "bland", "forgettable",
       "predictable", "disappointing", "annoying", "clumsy", "messy", "flat", "lifeless", "wooden",
       "shallow", "ridiculous", "painful", "unwatchable", "sloppy", "incoherent", "pretentious", "overlong",
       "slow", "lazy", "cheap", "amateurish", "laughable", "tired", "stale", "hollow", "confused",
       "unfunny", "uninspired", "drab", "muddled", "forced", "grating")
# Verbs of a viewer's judgement: (base form, past form).
GOOD_VERBS = (("like", "liked"), ("love", "loved"), ("enjoy", "enjoyed"), ("admire", "admired"),
              ("adore", "adored"), ("appreciate", "appreciated"), ("recommend", "recommended"),
              ("treasure", "treasured"))
BAD_VERBS = (("hate", "hated"), ("dislike", "disliked"), ("regret", "regretted"), ("despise", "despised"),
             ("resent", "resented"), ("loathe", "loathed"))

SUBJECTS = ("the film", "this film", "the movie", "this movie", "the picture", "the story", "the plot",
            "the acting", "the script", "the cast", "the ending", "the direction", "the score",
            "the performances", "the dialogue", "the characters", "this one", "it", "the sequel",
            "the remake", "the first half", "the lead", "the screenplay", "the photography", "the whole thing")
BE = ("is", "was", "feels", "felt", "seems", "seemed", "turned out", "proved", "comes across as", "looked")
NOT_BE = ("is not", "isn't", "was not", "wasn't", "is never", "was never", "is hardly", "was hardly",
          "is far from", "was far from", "is by no means", "was by no means", "does not feel",
          "didn't feel", "doesn't seem", "did not seem", "never felt", "is nowhere near", "was not at all",
          "is no longer", "wasn't ever", "isn't remotely")
# Said between a negation and the word it turns; none changes which way the sentence goes.
BETWEEN = ("really", "particularly", "especially", "very", "all that", "that", "terribly", "exactly",
           "even", "remotely", "in any way", "what I would call", "what you would call", "in the least",
           "for a moment", "by any stretch", "as", "quite", "entirely", "overly")
MORE = ("very", "really", "so", "truly", "incredibly", "extremely", "thoroughly", "deeply", "utterly",
        "genuinely", "remarkably", "totally")
LESS = ("fairly", "somewhat", "rather", "mildly", "slightly", "a little", "kind of", "sort of", "pretty",
        "reasonably", "mostly", "a bit")
NOT_DO = ("didn't", "did not", "don't", "do not", "never", "couldn't", "could not", "can't", "cannot",
          "won't", "wouldn't", "will never")
EXPECT = ("I expected {s} to be {w}", "I hoped {s} would be {w}", "I thought {s} would be {w}",
          "everyone told me {s} was {w}", "the trailer promised {s} would be {w}", "you would think {s} is {w}",
          "I assumed {s} would be {w}", "the reviews said {s} was {w}", "I was told {s} is {w}",
          "{s} was supposed to be {w}", "I was sure {s} would be {w}", "on paper {s} should be {w}")
DENY = ("but it wasn't", "but it was not", "but it isn't", "but it is not", "but it was anything but",
        "but no", "but it really wasn't", "but it never was", "but that was not the case",
        "but it turned out not to be", "but sadly it wasn't", "but happily it wasn't", "but it wasn't at all")
# ... or in a sentence of its own
DENY_APART = ("It wasn't.", "It was not.", "It isn't.", "It is not.", "It really wasn't.", "Not even close.",
              "Far from it.", "It was nothing of the sort.", "Sadly, no.", "Happily, it wasn't.",
              "Not at all.", "It turned out not to be.", "I was wrong.")
CONFIRM = ("and it was", "and it is", "and it really was", "and it certainly was", "and so it was",
           "and I was right")
CONFIRM_APART = ("It was.", "It really was.", "And it was.", "I was right.", "It certainly is.", "So it was.")
# A judgement denied from the outside: "I don't think it is good" says it is not.
NOT_THINK = ("I don't think", "I do not think", "I don't believe", "I do not believe", "I wouldn't say",
             "I would not say", "I can't say", "I cannot say", "nobody would say", "no one could say",
             "I don't feel", "I never thought", "I'm not sure")
ASIDE = ("honestly", "frankly", "to be fair", "if you ask me", "in the end", "on reflection", "looking back",
         "for what it's worth", "after some thought", "I must admit", "truth be told", "overall")
# Other people in a sentence: who watched or made a film says nothing about it.
PEOPLE = ("my brother", "my mother", "a friend", "my wife", "my husband", "the kids", "Jonas", "Amara", "Wei",
          "Sofia", "Rahul", "Chidi", "Ingrid", "Mateo", "Leila", "Hiroshi", "Nadia", "Oskar", "Thandiwe",
          "Pablo", "Anya", "Kofi", "Mei", "Dmitri", "Zainab", "Liam", "Farah", "Tariq", "Elena", "Kenji")
TURN = (", but", ". But", "; but", ", but then", ". However,", ", however", ", yet", ". Still,",
        ". Even so,", ", though in the end", ". That said,", ". On the other hand,")
NEUTRAL = ("I saw it last night.", "We watched it on a Sunday.", "It runs about two hours.",
           "I went in knowing nothing about it.", "My sister picked it.", "It came out a few years ago.",
           "I rented it on a whim.", "It is based on a novel.", "The theatre was half full.",
           "I watched it with friends.", "It was shot in Canada.", "I finally got round to it.")


@dataclass(frozen=True)
class Sentence:
    text: str
    label: int


def _word(rng: random.Random, good: bool) -> str:
    return rng.choice(GOOD if good else BAD)


def _statement(rng: random.Random) -> tuple[str, int]:
    """One clause that says what a film is, and whether it praises it."""
    good = rng.random() < 0.5
    s = rng.choice(SUBJECTS)
    kind = rng.randrange(6)
    if kind == 0:  # the film is good
        return f"{s} {rng.choice(BE)} {_word(rng, good)}", good
    if kind == 1:  # ... very / somewhat good
        return f"{s} {rng.choice(BE)} {rng.choice(MORE + LESS)} {_word(rng, good)}", good
    if kind == 2:  # the film is not (really) good: the other way
        between = f"{rng.choice(BETWEEN)} " if rng.random() < 0.4 else ""
        return f"{s} {rng.choice(NOT_BE)} {between}{_word(rng, good)}", not good
    if kind == 3:  # I loved it
        past = rng.choice(GOOD_VERBS if good else BAD_VERBS)[1]
        adverb = f"{rng.choice(('really', 'truly', 'honestly', 'absolutely', 'mostly', 'kind of'))} " \
            if rng.random() < 0.4 else ""
        return f"I {adverb}{past} {s}", good
    if kind == 4:  # I didn't love it: the other way
        base = rng.choice(GOOD_VERBS if good else BAD_VERBS)[0]
        between = f"{rng.choice(('really', 'particularly', 'even', 'exactly', 'ever'))} " if rng.random() < 0.3 else ""
        return f"I {rng.choice(NOT_DO)} {between}{base} {s}", not good
    # a good film / nothing good about it
    if rng.random() < 0.5:
        return f"{rng.choice(('a', 'such a', 'what a', 'quite a'))} {_word(rng, good)} {rng.choice(('film', 'movie', 'picture', 'story'))}", good
    return f"there is nothing {_word(rng, good)} about {s}", not good


def _sentence(rng: random.Random) -> tuple[str, int]:
    shape = rng.randrange(6)
    if shape == 0:
        text, label = _statement(rng)
    elif shape == 1:  # "X, but Y": Y decides
        first, first_label = _statement(rng)
        second, label = _statement(rng)
        while label == first_label:
            second, label = _statement(rng)
        if rng.random() < 0.2:
            text = f"although {first}, {second}"
        else:
            text = f"{first}{rng.choice(TURN)} {second}"
    elif shape == 4:  # "I don't think it is good": the other way
        good = rng.random() < 0.5
        s = rng.choice(SUBJECTS)
        aside = f", {rng.choice(ASIDE)}," if rng.random() < 0.4 else ""
        that = " that" if rng.random() < 0.5 else ""
        text = f"{rng.choice(NOT_THINK)}{aside}{that} {s} {rng.choice(('is', 'was', 'is all that', 'was very', 'is really'))} {_word(rng, good)}"
        label = not good
    elif shape == 5:  # somebody else in the sentence, who says nothing about the film
        text, label = _statement(rng)
        who = rng.choice(PEOPLE)
        text = rng.choice((f"I watched it with {who}, and {text}", f"{who} picked it, and {text}",
                           f"{text}, said {who}", f"{text}, and {who} agreed", f"{who} thinks {text}"))
    else:  # an expectation, denied at the end (the other way) or met
        denied = shape == 2
        good = rng.random() < 0.5
        s = rng.choice(("it", "the film", "the movie", "this one") + (("the sequel", "the story") if denied else ()))
        text = f"{rng.choice(EXPECT).format(s=s, w=_word(rng, good))}, {rng.choice(DENY if denied else CONFIRM)}"
        label = good != denied
        if rng.random() < 0.4:  # the verdict as a sentence of its own
            head = text[:text.rindex(",")]
            text = f"{head}. {rng.choice(DENY_APART if denied else CONFIRM_APART)}"
    text = text[0].upper() + text[1:]
    if rng.random() < 0.25:  # words that say nothing about the film, before or after
        end = "" if text.endswith(".") else "."
        text = f"{rng.choice(NEUTRAL)} {text}{end}" if rng.random() < 0.5 else f"{text}{end} {rng.choice(NEUTRAL)}"
    elif not text.endswith((".", "!")):
        text += rng.choice((".", ".", ".", "!", "", "..."))
    return text, int(label)


def sentences(count: int, seed: int) -> list[Sentence]:
    """``count`` labelled sentences, the same ones for the same seed, half of them positive."""
    rng = random.Random(f"augment-{seed}")
    out: list[Sentence] = []
    wanted = {POSITIVE: count - count // 2, NEGATIVE: count // 2}
    while wanted[POSITIVE] or wanted[NEGATIVE]:
        text, label = _sentence(rng)
        if wanted[label]:
            wanted[label] -= 1
            out.append(Sentence(text, label))
    return out
