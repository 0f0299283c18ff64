"""A built-in English → Chinese corpus: sentence pairs from a small grammar and lexicon.

The grammar is written so that cross-attention has real reordering to learn, as in Chinese:

* time before the verb: "My mother bought a book yesterday" → "我妈妈昨天买了一本书";
* place phrases before the verb: "I read at home" → "我在家…"; existential sentences put the
  place first: "There are two cats in the garden" → "花园里有两只猫";
* possessives "X 的 Y", with 的 dropped between a pronoun and a person ("my mother" → "我妈妈");
* measure words between number and noun ("two books" → "两本书", "that dog" → "那只狗");
* negation by 不 / 没有 / 不会 by tense; aspect 了 for the past, 会 for the future;
* questions with 吗 (yes/no) and question words left in place ("What did you buy?" → "你买了什么？").

Every English sentence has exactly one Chinese translation, and the pairs are a pure function of
the seed. :func:`en_zh_splits` gives disjoint train / valid / test splits.

Example:
    >>> pairs = en_zh_pairs(3, seed=1)
    >>> len(pairs), all(isinstance(en, str) and isinstance(zh, str) for en, zh in pairs)
    (3, True)
    >>> running_example()
    ('I love my dog', '我爱我的狗')
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["en_zh_pairs", "en_zh_splits", "running_example"]


# -- lexicon ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Noun:
    english: str
    plural: str
    chinese: str
    measure: str
    kind: str          # person | animal | food | drink | readable | thing | letter


def _nouns(kind: str, measure: str, entries: str) -> list[Noun]:
    """``"dog/dogs 狗, ..."`` → nouns; the plural defaults to english + "s"."""
    nouns = []
    for entry in entries.split(","):
        english, chinese = entry.split()
        singular, _, plural = english.partition("/")
        nouns.append(Noun(singular.replace("_", " "), (plural or singular + "s").replace("_", " "),
                          chinese, measure, kind))
    return nouns


PEOPLE = _nouns("person", "个", "friend 朋友, student 学生, teacher 老师, doctor 医生, "
                "neighbor 邻居, classmate 同学, child/children 孩子, boy 男孩, girl 女孩")
FAMILY = _nouns("person", "个", "mother 妈妈, father 爸爸, brother 哥哥, sister 姐姐, "
                "grandmother 奶奶, grandfather 爷爷, son 儿子, daughter 女儿")
ANIMALS = (_nouns("animal", "只", "dog 狗, cat 猫, bird 鸟, rabbit 兔子, duck 鸭子, panda 熊猫")
           + _nouns("animal", "条", "fish/fish 鱼, snake 蛇") + _nouns("animal", "匹", "horse 马"))
FOOD = (_nouns("food", "个", "apple 苹果, orange 橙子, egg 鸡蛋, cake 蛋糕, sandwich/sandwiches 三明治")
        + _nouns("food", "碗", "bowl_of_rice/bowls_of_rice 米饭, bowl_of_noodles/bowls_of_noodles 面条,"
                 " bowl_of_soup/bowls_of_soup 汤"))
DRINKS = (_nouns("drink", "杯", "cup_of_tea/cups_of_tea 茶, cup_of_coffee/cups_of_coffee 咖啡, "
                 "glass_of_milk/glasses_of_milk 牛奶, glass_of_water/glasses_of_water 水, "
                 "glass_of_juice/glasses_of_juice 果汁"))
READABLES = (_nouns("readable", "本", "book 书, magazine 杂志, dictionary/dictionaries 词典, novel 小说")
             + _nouns("readable", "份", "newspaper 报纸") + _nouns("readable", "张", "map 地图"))
THINGS = (_nouns("thing", "辆", "car 车, bicycle 自行车, bus/buses 公共汽车")
          + _nouns("thing", "件", "shirt 衬衫, coat 外套, sweater 毛衣")
          + _nouns("thing", "张", "table 桌子, photo 照片, ticket 票, bed 床")
          + _nouns("thing", "把", "chair 椅子, umbrella 伞, key 钥匙, knife/knives 刀")
          + _nouns("thing", "台", "computer 电脑, television 电视")
          + _nouns("thing", "个", "bag 包, box/boxes 盒子, cup 杯子, phone 手机, watch/watches 手表, "
                   "ball 球, toy 玩具, clock 钟")
          + _nouns("thing", "双", "pair_of_shoes/pairs_of_shoes 鞋"))
LETTERS = _nouns("letter", "封", "letter 信, email 邮件")

NAMES = {"Tom": "汤姆", "Mary": "玛丽", "John": "约翰", "Anna": "安娜", "Li_Lei": "李雷",
         "Wang_Fang": "王芳", "David": "大卫", "Lucy": "露西", "Peter": "彼得", "Xiao_Ming": "小明"}
NAMES = {english.replace("_", " "): chinese for english, chinese in NAMES.items()}

# pronoun: (subject, object, possessive, chinese, third person singular)
PRONOUNS = [("I", "me", "my", "我", False), ("you", "you", "your", "你", False),
            ("he", "him", "his", "他", True), ("she", "her", "her", "她", True),
            ("we", "us", "our", "我们", False), ("they", "them", "their", "他们", False)]

# adjective: english, chinese before a noun, chinese as a predicate (after 很), noun kinds
ADJECTIVES = [
    ("big", "大", "大", "animal thing readable food"), ("small", "小", "小", "animal thing food"),
    ("new", "新", "新", "thing readable"), ("old", "旧", "旧", "thing readable"),
    ("red", "红", "红", "thing food"), ("white", "白", "白", "animal thing"),
    ("black", "黑", "黑", "animal thing"), ("beautiful", "漂亮的", "漂亮", "thing animal person"),
    ("cute", "可爱的", "可爱", "animal person"), ("expensive", "贵的", "贵", "thing food drink"),
    ("cheap", "便宜的", "便宜", "thing food drink"), ("delicious", "好吃的", "好吃", "food"),
    ("interesting", "有意思的", "有意思", "readable"), ("hot", "热", "热", "drink food"),
    ("cold", "冷", "冷", "drink food"), ("kind", "善良的", "善良", "person"),
]
# predicate-only adjectives for people and animals
FEELINGS = [("happy", "高兴"), ("tired", "累"), ("hungry", "饿"), ("busy", "忙"), ("sad", "难过"),
            ("sick", "生病"), ("angry", "生气"), ("thirsty", "渴")]

# verb: base, third person singular, past, chinese, object kinds
ACTIONS = [
    ("buy", "buys", "bought", "买", "thing food drink readable animal"),
    ("eat", "eats", "ate", "吃", "food"),
    ("drink", "drinks", "drank", "喝", "drink"),
    ("see", "sees", "saw", "看见", "person animal thing"),
    ("find", "finds", "found", "找到", "thing animal readable"),
    ("write", "writes", "wrote", "写", "letter"),
    ("send", "sends", "sent", "寄", "letter"),
    ("wash", "washes", "washed", "洗", "thing"),
    ("borrow", "borrows", "borrowed", "借", "thing readable"),
    ("sell", "sells", "sold", "卖", "thing readable animal"),
    ("draw", "draws", "drew", "画", "animal person thing"),
    ("visit", "visits", "visited", "拜访", "person"),
    ("help", "helps", "helped", "帮助", "person"),
    ("feed", "feeds", "fed", "喂", "animal"),
    ("carry", "carries", "carried", "拿", "thing readable"),
    ("lose", "loses", "lost", "丢", "thing readable"),
]
STATIVES = [
    ("love", "loves", "爱", "person animal food drink"),
    ("like", "likes", "喜欢", "person animal food drink readable thing"),
    ("want", "wants", "想要", "thing food drink animal readable"),
    ("need", "needs", "需要", "thing food drink readable"),
    ("miss", "misses", "想念", "person animal"),
]

# place: english, chinese after 在, chinese as an existential location ("…里有")
PLACES = [("at home", "家", "家里"), ("at school", "学校", "学校里"), ("in the park", "公园", "公园里"),
          ("at the store", "商店", "商店里"), ("in the library", "图书馆", "图书馆里"),
          ("in the kitchen", "厨房", "厨房里"), ("at the restaurant", "饭馆", "饭馆里"),
          ("in the office", "办公室", "办公室里"), ("in the garden", "花园", "花园里"),
          ("at the station", "车站", "车站里"), ("in Beijing", "北京", "北京"),
          ("in Shanghai", "上海", "上海"), ("in the classroom", "教室", "教室里"),
          ("at the hospital", "医院", "医院里")]

# time: english, chinese, tense it implies
TIMES = [("today", "今天", "past"), ("yesterday", "昨天", "past"), ("last night", "昨天晚上", "past"),
         ("last week", "上个星期", "past"), ("last year", "去年", "past"),
         ("this morning", "今天早上", "past"),
         ("tomorrow", "明天", "future"), ("tomorrow morning", "明天早上", "future"),
         ("next week", "下个星期", "future"), ("next year", "明年", "future"),
         ("tonight", "今天晚上", "future"),
         ("every day", "每天", "present"), ("every morning", "每天早上", "present"),
         ("every evening", "每天晚上", "present"), ("on Sundays", "星期天", "present")]

NUMBERS = [("two", "两"), ("three", "三"), ("four", "四"), ("five", "五"), ("six", "六"),
           ("seven", "七"), ("eight", "八"), ("nine", "九"), ("ten", "十")]

NOUNS_BY_KIND: dict[str, list[Noun]] = {}
for _noun in PEOPLE + FAMILY + ANIMALS + FOOD + DRINKS + READABLES + THINGS + LETTERS:
    NOUNS_BY_KIND.setdefault(_noun.kind, []).append(_noun)


# -- phrases ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Phrase:
    english: str
    chinese: str
    singular: bool = True     # for verb agreement when it is a subject
    person: bool = False      # a person (or an animal) can be a subject


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _adjective(rng: random.Random, noun: Noun) -> tuple[str, str] | None:
    """Half the time, an adjective that suits the noun: (english, chinese prefix)."""
    fitting = [(en, zh) for en, zh, _, kinds in ADJECTIVES if noun.kind in kinds.split()]
    if not fitting or rng.random() < 0.6 or " of " in noun.english or noun.kind == "person":
        return None
    return rng.choice(fitting)


def possessed(pronoun: tuple, noun: Noun, adjective: tuple[str, str] | None = None) -> Phrase:
    """"my (big) dog" → "我的(大)狗"; 的 is dropped between a pronoun and a person: "我妈妈"."""
    _, _, en_pos, zh_pos, _ = pronoun
    en_adj, zh_adj = (adjective[0] + " ", adjective[1]) if adjective else ("", "")
    link = "" if noun.kind == "person" and not adjective else "的"
    return Phrase(f"{en_pos} {en_adj}{noun.english}", f"{zh_pos}{link}{zh_adj}{noun.chinese}",
                  person=noun.kind in ("person", "animal"))


def noun_phrase(rng: random.Random, kinds: list[str], *, possessor_ok: bool = True) -> Phrase:
    """A noun phrase of one of ``kinds``: "my big dog", "two books", "that cat", "Tom's car"…"""
    kind = rng.choice(kinds)
    if kind == "person" and rng.random() < 0.3:
        name = rng.choice(list(NAMES))
        return Phrase(name, NAMES[name], person=True)
    if kind == "person" and rng.random() < 0.45:
        noun = rng.choice(FAMILY)
    else:
        noun = rng.choice(NOUNS_BY_KIND[kind])
    adjective = _adjective(rng, noun)
    en_adj, zh_adj = (adjective[0] + " ", adjective[1]) if adjective else ("", "")
    person = kind in ("person", "animal")
    roll = rng.random()
    if roll < 0.45 and possessor_ok:                     # my / Tom's / my friend's + noun
        possessor = rng.random()
        if possessor < 0.6:
            return possessed(rng.choice(PRONOUNS), noun, adjective)
        if possessor < 0.8:
            name = rng.choice(list(NAMES))
            return Phrase(f"{name}'s {en_adj}{noun.english}", f"{NAMES[name]}的{zh_adj}{noun.chinese}",
                          person=person)
        _, _, en_pos, zh_pos, _ = rng.choice(PRONOUNS)
        owner = rng.choice(FAMILY + PEOPLE[:4])
        return Phrase(f"{en_pos} {owner.english}'s {en_adj}{noun.english}",
                      f"{zh_pos}{owner.chinese}的{zh_adj}{noun.chinese}", person=person)
    if roll < 0.7:                                        # a / two … + measure word
        if rng.random() < 0.5:
            return Phrase(f"{_article(en_adj + noun.english)} {en_adj}{noun.english}",
                          f"一{noun.measure}{zh_adj}{noun.chinese}", person=person)
        en_num, zh_num = rng.choice(NUMBERS)
        return Phrase(f"{en_num} {en_adj}{noun.plural}", f"{zh_num}{noun.measure}{zh_adj}{noun.chinese}",
                      singular=False, person=person)
    if roll < 0.9:                                        # this / that + measure word
        en_dem, zh_dem = rng.choice([("this", "这"), ("that", "那")])
        return Phrase(f"{en_dem} {en_adj}{noun.english}", f"{zh_dem}{noun.measure}{zh_adj}{noun.chinese}",
                      person=person)
    return Phrase(f"the {en_adj}{noun.english}", f"那{noun.measure}{zh_adj}{noun.chinese}", person=person)


def subject_phrase(rng: random.Random, *, people_only: bool = False) -> Phrase:
    """A subject: a pronoun, a name or a person (or animal) noun phrase."""
    if rng.random() < 0.5:
        en, _, _, zh, third = rng.choice(PRONOUNS)
        return Phrase(en, zh, singular=third or en == "I", person=True)
    return noun_phrase(rng, ["person"] if people_only else ["person", "person", "animal"])


def _third_singular(subject: Phrase) -> bool:
    return subject.singular and subject.english not in ("I", "you")


def _be(subject: Phrase, tense: str) -> str:
    if tense == "past":
        return "was" if subject.singular and subject.english != "you" else "were"
    if subject.english == "I":
        return "am"
    return "is" if _third_singular(subject) else "are"


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _object_of(rng: random.Random, kinds: str) -> Phrase:
    return noun_phrase(rng, kinds.split())


# -- sentences -------------------------------------------------------------------------------------

def _action(rng: random.Random, question: str | None = None) -> tuple[str, str]:
    """Subject [time] [place] verb object: "My mother bought two books at the store yesterday"."""
    base, third, past, zh_verb, kinds = rng.choice(ACTIONS)
    subject = subject_phrase(rng, people_only=True) if question != "who" else Phrase("who", "谁")
    time = rng.choice(TIMES) if rng.random() < 0.6 else None
    tense = time[2] if time else rng.choice(["present", "past", "future"])
    place = rng.choice(PLACES) if rng.random() < 0.4 and question != "where" else None
    negative = question is None and rng.random() < 0.25
    obj = _object_of(rng, kinds) if question != "what" else Phrase("what", "什么")

    # English
    third_person = question == "who" or _third_singular(subject)
    if question in ("yes", "what", "where"):
        aux = {"past": "did", "future": "will", "present": "does" if third_person else "do"}[tense]
        words = [aux, subject.english, base]
    elif negative:
        aux = {"past": "did not", "future": "will not",
               "present": "does not" if third_person else "do not"}[tense]
        words = [subject.english, aux, base]
    else:
        verb = {"past": past, "future": f"will {base}", "present": third if third_person else base}[tense]
        words = [subject.english, verb]
    if question != "what":
        words.append(obj.english)
    if place:
        words.append(place[0])
    if time:
        words.append(time[0])
    english = " ".join(words)
    if question in ("what", "where"):
        english = f"{question} {english}"

    # Chinese: subject, time, place, negation/aspect, verb, object
    zh_time = time[1] if time else ""
    zh_place = f"在{place[1]}" if place else ("在哪里" if question == "where" else "")
    # negation and 会 come before the place phrase: 我明天会在车站寄信, 我没有在商店买书
    if negative:
        zh_aux, zh_verb_form = {"past": "没有", "future": "不会", "present": "不"}[tense], zh_verb
    else:
        zh_aux = "会" if tense == "future" else ""
        zh_verb_form = zh_verb + "了" if tense == "past" else zh_verb
    chinese = f"{subject.chinese}{zh_time}{zh_aux}{zh_place}{zh_verb_form}{obj.chinese}"
    if question == "yes":
        chinese += "吗"
    return english, chinese


def _stative(rng: random.Random, question: str | None = None) -> tuple[str, str]:
    """Subject loves/likes/wants… object, present tense: "I love my dog" → "我爱我的狗"."""
    verb = rng.choice(STATIVES)
    subject = subject_phrase(rng)
    obj = _object_of(rng, verb[3])
    roll = rng.random()
    form = ("question" if question == "yes" else "negative" if roll < 0.25
            else "very much" if roll < 0.45 and verb[0] in ("love", "like", "miss") else "plain")
    return stative_clause(subject, verb, obj, form)


def stative_clause(subject: Phrase, verb: tuple, obj: Phrase, form: str = "plain") -> tuple[str, str]:
    """``form``: "plain" ("I love my dog" → "我爱我的狗"), "negative", "very much", "question"."""
    base, third, zh_verb, _ = verb
    does = "does" if _third_singular(subject) else "do"
    if form == "question":
        return (f"{does} {subject.english} {base} {obj.english}",
                f"{subject.chinese}{zh_verb}{obj.chinese}吗")
    if form == "negative":
        return (f"{subject.english} {does} not {base} {obj.english}",
                f"{subject.chinese}不{zh_verb}{obj.chinese}")
    inflected = third if _third_singular(subject) else base
    if form == "very much":
        return (f"{subject.english} {inflected} {obj.english} very much",
                f"{subject.chinese}很{zh_verb}{obj.chinese}")
    return f"{subject.english} {inflected} {obj.english}", f"{subject.chinese}{zh_verb}{obj.chinese}"


def _predicate(rng: random.Random, question: str | None = None) -> tuple[str, str]:
    """Subject is adjective: "My dog was happy yesterday" → "我的狗昨天很高兴"."""
    if rng.random() < 0.5:
        subject = subject_phrase(rng)
        english_adj, zh_adj = rng.choice(FEELINGS)
    else:
        noun_kind = rng.choice(["thing", "food", "drink", "readable", "animal"])
        subject = noun_phrase(rng, [noun_kind])
        english_adj, _, zh_adj, _ = rng.choice([a for a in ADJECTIVES if noun_kind in a[3].split()])
    time = rng.choice([t for t in TIMES if t[2] != "future"]) if rng.random() < 0.3 else None
    tense = "past" if time and time[2] == "past" else "present"
    be = _be(subject, tense)
    when = f" {time[0]}" if time else ""
    zh_time = time[1] if time else ""
    if question == "yes":
        return (f"{be} {subject.english} {english_adj}{when}",
                f"{subject.chinese}{zh_time}{zh_adj}吗")
    if rng.random() < 0.25:
        negated = "was not" if be == "was" else "were not" if be == "were" else f"{be} not"
        return (f"{subject.english} {negated} {english_adj}{when}",
                f"{subject.chinese}{zh_time}不{zh_adj}")
    return f"{subject.english} {be} {english_adj}{when}", f"{subject.chinese}{zh_time}很{zh_adj}"


def _existential(rng: random.Random, question: str | None = None) -> tuple[str, str]:
    """There is/are … place: "There are two cats in the garden" → "花园里有两只猫"."""
    noun = rng.choice(ANIMALS + THINGS + READABLES + PEOPLE)
    place = rng.choice(PLACES)
    count = rng.random()
    if count < 0.5:
        en_np, zh_np, be = f"{_article(noun.english)} {noun.english}", f"一{noun.measure}{noun.chinese}", "is"
    else:
        en_num, zh_num = rng.choice(NUMBERS)
        en_np, zh_np, be = f"{en_num} {noun.plural}", f"{zh_num}{noun.measure}{noun.chinese}", "are"
    if question == "yes":
        return f"{be} there {en_np} {place[0]}", f"{place[2]}有{zh_np}吗"
    return f"there {be} {en_np} {place[0]}", f"{place[2]}有{zh_np}"


_KINDS = [(_action, 0.38), (_stative, 0.22), (_predicate, 0.22), (_existential, 0.18)]
_QUESTIONS = {_action: ["yes", "what", "where", "who"], _stative: ["yes"],
              _predicate: ["yes"], _existential: ["yes"]}


def sentence_pair(rng: random.Random) -> tuple[str, str]:
    """One (english, chinese) pair drawn from the grammar."""
    make = rng.choices([k for k, _ in _KINDS], weights=[w for _, w in _KINDS])[0]
    question = rng.choice(_QUESTIONS[make]) if rng.random() < 0.25 else None
    english, chinese = make(rng, question)
    english = _cap(english)
    if question:
        return english + "?", chinese + "？"
    if rng.random() < 0.7:                 # a third of statements come without a full stop
        return english + ".", chinese + "。"
    return english, chinese


def en_zh_pairs(n: int, *, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct (english, chinese) pairs, a pure function of ``seed``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    pairs: dict[str, str] = {}
    attempts = 0
    while len(pairs) < n:
        english, chinese = sentence_pair(rng)
        pairs.setdefault(english, chinese)
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"the grammar produced only {len(pairs)} distinct sentences")
    return list(pairs.items())


def en_zh_splits(train: int = 20000, valid: int = 500, test: int = 500, *,
                 seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """Disjoint ``train`` / ``valid`` / ``test`` splits (no English sentence in two splits)."""
    pairs = en_zh_pairs(train + valid + test, seed=seed)
    return {"train": pairs[:train], "valid": pairs[train:train + valid],
            "test": pairs[train + valid:]}


def running_example() -> tuple[str, str]:
    """The seeds' running example, built by the grammar's own rules (too rare to expect it in a
    random draw): ``("I love my dog", "我爱我的狗")``."""
    i = PRONOUNS[0]
    dog = next(noun for noun in ANIMALS if noun.english == "dog")
    love = next(verb for verb in STATIVES if verb[0] == "love")
    english, chinese = stative_clause(Phrase(i[0], i[3]), love, possessed(i, dog))
    return _cap(english), chinese
