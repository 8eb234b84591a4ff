"""The behaviour suite's word lists and templates: short statements about films, written for this project.

Each template names its category and the label a reader gives every sentence it generates; slots
in braces are filled from the word lists below (``{pos_adj2}`` is a second, independent
``pos_adj``). Invariance templates (``INV_*`` categories) give base sentences whose label must not
change under a perturbation; their ``label`` only balances the split and the examples.

Words are chosen so that every fill reads as the label says: gradable adjectives with
intensifiers and softeners ("very excellent" is not English), and for negated negatives only
forms a reader takes as praise ("I was not disappointed", "not a single dull moment"), not the
ambiguous "not boring". The templates were fixed before any model was run on them, except that
the first two typo templates were reworded after the first run ("Honestly, ..."): they made the same
sentences as two case templates on the other side of the split.
"""
from __future__ import annotations

from dataclasses import dataclass

POS, NEG = "positive", "negative"

WORDS: dict[str, tuple[str, ...]] = {
    "thing": ("film", "movie", "story", "plot", "acting", "script", "ending", "dialogue", "direction",
              "soundtrack", "cinematography", "casting"),
    # a part of a film, for templates that name the film too
    "aspect": ("story", "plot", "acting", "script", "ending", "dialogue", "direction", "soundtrack",
               "cinematography", "casting"),
    # ... that takes "a": "a great plot", never "a great acting"
    "count_aspect": ("story", "plot", "script", "ending", "soundtrack", "cast", "opening", "finale"),
    "film": ("film", "movie", "thriller", "comedy", "drama", "documentary", "western", "musical"),
    "pos_adj": ("good", "great", "wonderful", "excellent", "brilliant", "superb", "fantastic", "terrific",
                "delightful", "enjoyable", "beautiful", "moving", "gripping", "charming", "impressive",
                "outstanding"),
    "neg_adj": ("bad", "terrible", "awful", "horrible", "dreadful", "boring", "dull", "tedious", "poor",
                "weak", "disappointing", "lousy", "pointless", "forgettable", "clumsy"),
    # gradable: they take "very" and "fairly"
    "pos_grad": ("good", "enjoyable", "entertaining", "funny", "moving", "charming", "clever", "engaging",
                 "beautiful", "exciting", "touching"),
    "neg_grad": ("bad", "boring", "dull", "slow", "disappointing", "tedious", "predictable", "weak", "bland",
                 "clumsy", "silly", "confusing"),
    # "not X at all" reads as praise for these, not just as "not the worst"
    "negatable_neg": ("bad", "boring", "dull", "disappointing", "tedious"),
    "intens": ("very", "really", "extremely", "incredibly", "truly", "remarkably", "genuinely",
               "exceptionally"),
    "verb_intens": ("really", "truly", "absolutely", "genuinely", "honestly"),
    "pos_soft": ("fairly", "reasonably", "quite", "pretty", "mostly", "moderately"),
    "neg_soft": ("somewhat", "a bit", "slightly", "rather", "a little", "kind of"),
    # before a noun: "a somewhat dull film", never "a a bit dull film"
    "neg_soft_attr": ("somewhat", "rather", "slightly", "mildly"),
    "soft_verb": ("mostly", "quite", "kind of", "sort of", "more or less"),
    "pos_verb": ("loved", "enjoyed", "liked", "adored", "admired"),
    "pos_verb_soft": ("liked", "enjoyed"),
    "pos_verb_base": ("love", "enjoy", "like", "admire"),
    "pos_verb_present": ("love", "enjoy", "like", "adore", "admire", "appreciate"),
    "neg_verb": ("hated", "disliked", "despised", "detested", "loathed"),
    "neg_verb_present": ("hate", "dislike", "despise", "detest", "loathe"),
    # said of a person
    "perf_pos": ("wonderful", "brilliant", "superb", "excellent", "great", "terrific", "outstanding",
                 "impressive", "convincing", "charming"),
    "perf_neg": ("terrible", "awful", "dreadful", "wooden", "unconvincing", "weak", "bad", "lifeless",
                 "forgettable", "embarrassing"),
    "neutral": ("in my opinion", "to be honest", "as far as I can tell", "I have to say", "for me",
                "all things considered", "if I am honest", "in the end"),
    "long_neutral": ("given how many films I watch every year", "after seeing it twice at the cinema",
                     "having read the book first", "as someone who goes to the cinema every week",
                     "even after thinking about it for a few days"),
    "neutral_when": ("at any point", "even once", "for a single minute", "at any moment"),
    "name": ("Maria Lopez", "Kwame Mensah", "Yuki Tanaka", "Priya Sharma", "John Smith", "Olga Ivanova",
             "Ahmed Hassan", "Chen Wei", "Emma Clarke", "Lars Nilsson", "Fatima Diallo", "Diego Moreno",
             "Aroha Ngata", "Tomasz Nowak"),
    "title": ("The Harbour Road", "Midnight in Lisbon", "Seven Winters", "The Glass Orchard", "Paper Kites",
              "The Copper Key", "Last Train to Ostend", "Blue Hour", "The Salt Flats", "North of the River",
              "A Room in Marseille", "The Ninth Lantern"),
}


@dataclass(frozen=True)
class Template:
    id: str  # stable: the held-out split is drawn from it
    category: str
    text: str
    label: str  # what a reader says every fill is (for INV_*: the base sentence's)


# What each category tests, for the table's legend and the model card.
CATEGORIES: dict[str, str] = {
    "plain": "plain positive and negative statements",
    "negated_positive": "a negated positive is negative",
    "negated_negative": "a negated negative, where it is clearly praise, is positive",
    "negation_at_end": "the negation comes last (\"I expected it to be great, but it wasn't\")",
    "negation_neutral_between": "neutral words between the negation and what it negates",
    "contrast": "\"X, but Y\" / \"despite X, Y\": Y decides",
    "intensifier": "an intensified statement keeps its label",
    "softener": "a softened statement keeps its label",
    "inv_name": "INV: another person's name leaves the label alone",
    "inv_title": "INV: another film title leaves the label alone",
    "inv_punctuation": "INV: end punctuation dropped or '!', commas dropped",
    "inv_case": "INV: all lower case, all upper case",
    "inv_typo": "INV: one swap of two neighbouring letters",
}

INVARIANCE = tuple(c for c in CATEGORIES if c.startswith("inv_"))
# The slot an INV_name/INV_title template swaps to make its variants
SWAPPED_SLOT = {"inv_name": "name", "inv_title": "title"}


def _t(category: str, label: str, *texts: str) -> list[Template]:
    prefix = category.replace("negation_", "neg").replace("negated_", "ngd").replace("_", "")
    tag = "p" if label == POS else "n"
    return [Template(f"{prefix}-{tag}{i}", category, text, label) for i, text in enumerate(texts, 1)]


TEMPLATES: tuple[Template, ...] = tuple(
    _t("plain", POS,
       "The {thing} was {pos_adj}.",
       "I {pos_verb} this {film}.",
       "What a {pos_adj} {film}!",
       "This is a {pos_adj} {film}.",
       "It is a {pos_adj} {film} with a {pos_adj2} {count_aspect}.")
    + _t("plain", NEG,
         "The {thing} was {neg_adj}.",
         "I {neg_verb} this {film}.",
         "What a {neg_adj} {film}!",
         "This is a {neg_adj} {film}.",
         "It is a {neg_adj} {film} with a {neg_adj2} {count_aspect}.")
    + _t("negated_positive", NEG,
         "The {thing} was not {pos_adj}.",
         "The {thing} wasn't {pos_adj}.",
         "I did not {pos_verb_base} this {film}.",
         "I didn't {pos_verb_base} the {thing}.",
         "This is not a {pos_adj} {film}.",
         "There was nothing {pos_adj} about this {film}.",
         "The {thing} was never {pos_adj}.",
         "I can't say I {pos_verb} this {film}.")
    + _t("negated_negative", POS,
         "I was not disappointed by this {film}.",
         "This {film} did not disappoint.",
         "There was not a single dull moment in this {film}.",
         "I have no complaints about the {thing}.",
         "I can't find anything wrong with this {film}.",
         "The {thing} was not {negatable_neg} at all.",
         "I don't regret watching this {film} at all.",
         "I was never bored during this {film}.")
    + _t("negation_at_end", NEG,
         "I expected the {thing} to be {pos_adj}, but it wasn't.",
         "I thought this {film} would be {pos_adj}. It was not.",
         "Everyone told me the {thing} was {pos_adj}. It wasn't.",
         "I wanted to {pos_verb_base} this {film}, but I didn't.",
         "The trailer promised a {pos_adj} {film}. It isn't one.")
    + _t("negation_at_end", POS,
         "I expected the {thing} to be {negatable_neg}, but it wasn't.",
         "I was told this {film} would be {negatable_neg}. It was not.",
         "I thought I would be bored by this {film}, but I wasn't.")
    + _t("negation_neutral_between", NEG,
         "The {thing} was not, {neutral}, {pos_adj}.",
         "I don't think, {neutral}, that this {film} is {pos_adj}.",
         "I did not, {neutral_when}, {pos_verb_base} this {film}.",
         "This is not a {film} that I, {neutral}, would call {pos_adj}.",
         "I can't say, {long_neutral}, that I {pos_verb} this {film}.")
    + _t("negation_neutral_between", POS,
         "I was not, {neutral}, disappointed by this {film}.",
         "I did not, {neutral_when}, feel bored during this {film}.")
    + _t("contrast", POS,
         "The {aspect} was {neg_adj}, but overall the {film} was {pos_adj}.",
         "I used to think this {film} was {neg_adj}, but now I {pos_verb_present} it.",
         "The first half is {neg_grad}, but the {film} as a whole is {pos_adj}.",
         "Despite the {neg_adj} {aspect}, I {pos_verb} this {film}.")
    + _t("contrast", NEG,
         "The {aspect} was {pos_adj}, but overall the {film} was {neg_adj}.",
         "I used to think this {film} was {pos_adj}, but now I {neg_verb_present} it.",
         "The first half is {pos_grad}, but the {film} as a whole is {neg_adj}.",
         "Despite the {pos_adj} {aspect}, I {neg_verb} this {film}.")
    + _t("intensifier", POS,
         "The {thing} was {intens} {pos_grad}.",
         "This is a {intens} {pos_grad} {film}.",
         "I {verb_intens} {pos_verb} this {film}.")
    + _t("intensifier", NEG,
         "The {thing} was {intens} {neg_grad}.",
         "This is a {intens} {neg_grad} {film}.",
         "I {verb_intens} {neg_verb} this {film}.")
    + _t("softener", POS,
         "The {thing} was {pos_soft} {pos_grad}.",
         "It is a {pos_soft} {pos_grad} {film}.",
         "I {soft_verb} {pos_verb_soft} the {thing}.")
    + _t("softener", NEG,
         "The {thing} was {neg_soft} {neg_grad}.",
         "It is a {neg_soft_attr} {neg_grad} {film}.",
         "I found the {thing} {neg_soft} {neg_grad}.")
    + _t("inv_name", POS,
         "{name} is {perf_pos} in this {film}.",
         "{name} gives a {perf_pos} performance in this {film}.",
         "I watched this {film} with {name}, and we both {pos_verb} it.")
    + _t("inv_name", NEG,
         "{name} is {perf_neg} in this {film}.",
         "{name} gives a {perf_neg} performance in this {film}.",
         "I watched this {film} with {name}, and we both {neg_verb} it.")
    + _t("inv_title", POS,
         "{title} is a {pos_adj} {film}.",
         "I {pos_verb} every minute of {title}.",
         "{title} has a {pos_adj} {count_aspect}.")
    + _t("inv_title", NEG,
         "{title} is a {neg_adj} {film}.",
         "I {neg_verb} every minute of {title}.",
         "{title} has a {neg_adj} {count_aspect}.")
    + _t("inv_punctuation", POS,
         "The {thing} was {pos_adj}, and I {pos_verb} it.",
         "Honestly, this {film} is {pos_adj}; the {aspect} is {pos_adj2}.",
         "What a {pos_adj} {film}, with a {pos_adj2} {count_aspect}.")
    + _t("inv_punctuation", NEG,
         "The {thing} was {neg_adj}, and I {neg_verb} it.",
         "Honestly, this {film} is {neg_adj}; the {aspect} is {neg_adj2}.",
         "What a {neg_adj} {film}, with a {neg_adj2} {count_aspect}.")
    + _t("inv_case", POS,
         "The {thing} was {pos_adj} and I {pos_verb} it.",
         "This {film} is {pos_adj} from start to finish.",
         "I {pos_verb} the {thing}; it is {pos_adj}.")
    + _t("inv_case", NEG,
         "The {thing} was {neg_adj} and I {neg_verb} it.",
         "This {film} is {neg_adj} from start to finish.",
         "I {neg_verb} the {thing}; it is {neg_adj}.")
    + _t("inv_typo", POS,
         "Honestly, the {thing} was {pos_adj} and I {pos_verb} it.",
         "A {pos_adj} {film} with a {pos_adj2} {count_aspect}.",
         "I {pos_verb} this {film}, the {aspect} above all.")
    + _t("inv_typo", NEG,
         "Honestly, the {thing} was {neg_adj} and I {neg_verb} it.",
         "A {neg_adj} {film} with a {neg_adj2} {count_aspect}.",
         "I {neg_verb} this {film}, the {aspect} above all.")
)
