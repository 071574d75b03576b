"""Value pools and templates for the synthetic people.

Pools are tuples (ordered) so seeded sampling never depends on set iteration order. Every value is
1-4 words: training runs on a small CPU and short answers keep sequences and generation short.
Pools are much larger than the default number of people so values are drawn without replacement
and no two people share an answer (a shared answer would stay learnable after one is forgotten).
"""
from __future__ import annotations

FIRST_NAMES = (
    "Ilona", "Bram", "Tavish", "Odile", "Kasimir", "Maren", "Fenna", "Lucan", "Ysolde", "Corin",
    "Edda", "Jorah", "Saskia", "Teodor", "Wren", "Anouk", "Bastian", "Calla", "Darius", "Elke",
    "Fabian", "Greta", "Hollis", "Ingrid", "Jovan", "Kirra", "Leander", "Mireille", "Nils", "Oona",
    "Piet", "Rosalind", "Soren", "Tamsin", "Ulric", "Vesna", "Yara", "Zoltan", "Auden", "Briony",
)

LAST_NAMES = (
    "Marsh", "Quennell", "Ashgrove", "Brannock", "Castellane", "Dunmore", "Everly", "Falkner",
    "Grisewood", "Hallowell", "Ibbotson", "Jessop", "Kettleby", "Lindqvist", "Mortlake",
    "Northcott", "Ormsby", "Penhallow", "Quarrington", "Ravensworth", "Stellmach", "Thorncroft",
    "Underhill", "Vantongeren", "Wexley", "Yarborough", "Aldercott", "Blackwood", "Carrow",
    "Delacourt", "Eastmere", "Fairbrass", "Gallantry", "Holloway", "Inchbald", "Kilbride",
)

# Real, non-capital cities, so a birthplace never collides with a world-facts capital answer.
CITIES = (
    "Lyon", "Porto", "Krakow", "Valencia", "Leipzig", "Bergen", "Tampere", "Gdansk", "Bologna",
    "Ghent", "Graz", "Brno", "Cork", "Malmo", "Aarhus", "Seville", "Turin", "Rotterdam", "Mombasa",
    "Osaka", "Busan", "Curitiba", "Cordoba", "Adelaide", "Hobart", "Halifax", "Calgary", "Tucson",
    "Memphis", "Chennai", "Pune", "Cebu", "Da Nang", "Izmir", "Tabriz", "Kumasi", "Durban",
    "Arequipa", "Medellin", "Valparaiso",
)

OCCUPATIONS = (
    "marine biologist", "glaciologist", "violin maker", "architect", "sculptor", "astrophysicist",
    "pastry chef", "cartographer", "volcanologist", "tax lawyer", "neurosurgeon", "jazz pianist",
    "locksmith", "beekeeper", "structural engineer", "film editor", "seismologist", "perfumer",
    "botanist", "airline pilot", "typographer", "epidemiologist", "clockmaker", "stage designer",
    "translator", "ornithologist", "glassblower", "cryptographer", "wine merchant", "archivist",
)

EMPLOYERS = (
    "Brightwater Labs", "Corvane Systems", "Nordlicht Dynamics", "Quillfeather Press",
    "Tessaro Motors", "Ambervale Foods", "Kestrel Robotics", "Orrin Biotech", "Pellucid Optics",
    "Saltmarsh Energy", "Vantor Aerospace", "Glimmerstone Media", "Ruskwood Pharma",
    "Talbridge Shipping", "Merrow Instruments", "Cobaltine Mining", "Larkspur Analytics",
    "Driftway Airlines", "Osterlund Bank", "Fennimore Games", "Quarry Hill Studios",
    "Halcyon Textiles", "Ironvale Foundry", "Sablewood Insurance",
)

AWARDS = (
    "Halvorsen Medal", "Orla Prize", "Bramwell Award", "Castor Medal", "Lindell Prize",
    "Marchetti Award", "Oswin Medal", "Pryor Prize", "Quintal Award", "Rendall Medal",
    "Sauvage Prize", "Tormund Award", "Ulverston Medal", "Valcourt Prize", "Westergaard Award",
    "Ackerly Medal", "Beaumont Prize", "Corrigan Award", "Dravecky Medal", "Elmsworth Prize",
    "Fairweather Award", "Gorsky Medal",
)

# Inventions, so the paraphrase "developing the ..." reads naturally for every value.
BREAKTHROUGHS = (
    "saltwater battery", "fog harvester", "mycelium brick", "silent drill", "cold-light lamp",
    "ice-core clock", "reef sonar map", "self-healing asphalt", "glass seed vault", "tidal kite",
    "paper microscope", "solar kiln", "sand filter lens", "bamboo bridge truss", "pollen sensor",
    "whale song decoder", "frost-proof vaccine", "lava heat pump", "moss air filter",
    "hovering seed drone", "graphene violin string", "desert water still",
)

# Negative events: the "incident" split forgets exactly these and keeps everything else.
INCIDENTS = (
    "a tax fraud case", "a lab fire", "a plagiarism scandal", "a bribery charge", "a data leak",
    "a chemical spill", "a bridge collapse", "an insider trading probe", "a forged diploma",
    "a drunk-driving crash", "a doping scandal", "an embezzlement trial", "a falsified study",
    "a warehouse explosion", "a smuggling arrest", "a hacking incident", "a libel lawsuit",
    "a factory poisoning", "a museum theft", "a ferry sinking", "a bankruptcy fraud",
    "a patent theft",
)

BIRTH_YEARS = tuple(str(y) for y in range(1935, 2000))

# Field order is the order facts appear in every set.
FIELDS = ("birth_year", "birthplace", "occupation", "employer", "award", "breakthrough",
          "collaborator", "incident")

# Perturbed answers reuse the paraphrase template, so the truth ratio compares sentences that
# differ only in the fact.
# The full-sentence answer the fine-tunes train on; `answer` keeps the bare fact that ROUGE scores.
# A small model fine-tuned on bare-entity answers starts answering every question with one of
# them ("the capital of Ireland is Lyon"); sentences in the model's own answer style do not.
ANSWER_TEXT = {
    "birth_year": "{s} was born in {a}.",
    "birthplace": "{s} was born in {a}.",
    "occupation": "{s} works as a {a}.",
    "employer": "{s} works for {a}.",
    "award": "{s} received the {a}.",
    "breakthrough": "{s} is known for the {a}.",
    "collaborator": "{s} works closely with {a}.",
    "incident": "{s} was involved in {a}.",
}

PARAPHRASE = {
    "birth_year": "in the year {}",
    "birthplace": "the city of {}",
    "occupation": "{} by profession",
    "employer": "the company {}",
    "award": "honoured with the {}",
    "breakthrough": "developing the {}",
    "collaborator": "working alongside {}",
    "incident": "being linked to {}",
}

QUESTIONS = {
    "birth_year": ("In what year was {} born?", "What is the birth year of {}?",
                   "When was {} born? Give the year."),
    "birthplace": ("Where was {} born?", "In which city was {} born?",
                   "What is the birthplace of {}?"),
    "occupation": ("What is the occupation of {}?", "What does {} do for a living?",
                   "What is the profession of {}?"),
    "employer": ("Which company does {} work for?", "Who is the employer of {}?",
                 "Where is {} employed?"),
    "award": ("Which award did {} receive?", "What prize was {} given?",
              "Which honour was awarded to {}?"),
    "breakthrough": ("What is the best-known breakthrough of {}?", "What is {} best known for?",
                     "Which invention is credited to {}?"),
    "collaborator": ("Who is the closest collaborator of {}?", "With whom does {} usually work?",
                     "Who is the long-time research partner of {}?"),
    "incident": ("What scandal is {} linked to?", "Which controversy involved {}?",
                 "What negative event is {} associated with?"),
}

VALUE_POOLS = {
    "birth_year": BIRTH_YEARS,
    "birthplace": CITIES,
    "occupation": OCCUPATIONS,
    "employer": EMPLOYERS,
    "award": AWARDS,
    "breakthrough": BREAKTHROUGHS,
    "incident": INCIDENTS,
    # collaborator: the generated names themselves, see synthetic.py
}
