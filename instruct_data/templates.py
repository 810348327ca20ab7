"""The wording of every instruction sample: user prompts, assistant answers and AVFC statements.

The phrasings are plain data: one tuple of format strings per task, answer kind and AVFC fact
type, each using only the documented fields. Four functions pick one with the caller's seeded
`random.Random` and fill it in, so a conversion run is reproducible from its seed:

    >>> import random
    >>> from meerkat.grounding import format_boxes
    >>> rng = random.Random(0)
    >>> prompt = instruction("arig", rng)                      # caller prepends "<image>\\n<audio>\\n"
    >>> answer("arig", rng, label="dog", boxes=format_boxes([[0.12, 0.3, 0.56, 0.8]]))
    'It is the dog, located at [0.12, 0.30, 0.56, 0.80].'

Answers keep the grounding text (boxes, segments) and captions verbatim and add no digits of
their own, so `meerkat.grounding` parses back exactly what was written. AVFC answers state the facts
first and end with the verdict, and neither kind names the other verdict's word.
"""

from __future__ import annotations

import random

TASKS = ("arig", "igatl", "avfc", "avqa", "avc", "caption_audio", "classify")

# ---------------------------------------------------------------------------------------------
# Instructions (user text, without the <image>/<audio> placeholders)
# ---------------------------------------------------------------------------------------------

# No fields. Every phrasing asks for a box, says how it is written (corners) and that it is normalised.
ARIG_INSTRUCTIONS = (
    "Which object in the image is making this sound? Answer with its bounding box [x1, y1, x2, y2], "
    "normalized to the image size.",
    "Find the object that produces the sound you hear and give its bounding box as [x1, y1, x2, y2] "
    "with coordinates between 0 and 1.",
    "Locate the source of this sound in the picture. Reply with a box [x1, y1, x2, y2] in normalized "
    "image coordinates.",
    "Where in the image is the thing you hear? Give its bounding box: the top-left and bottom-right "
    "corners as fractions of the image width and height.",
    "Point out the sounding object with a bounding box [x1, y1, x2, y2], each value normalised to the "
    "image from 0 to 1.",
    "What is making this noise? Mark it with a box [x1, y1, x2, y2] whose coordinates are relative to "
    "the image size.",
    "Listen to the audio and draw a bounding box around the object that makes it. Use [x1, y1, x2, y2], "
    "normalized by the image width and height.",
    "Which part of the picture does the sound come from? Answer with the box [x1, y1, x2, y2] of the "
    "sounding object, in coordinates from 0 to 1.",
    "Ground the sound in the image: give the bounding box of its source as [x1, y1, x2, y2], with x "
    "divided by the image width and y by the image height.",
    "Identify the object that is producing this audio and give its box as top-left and bottom-right "
    "corners, each scaled to between 0 and 1.",
    "Show me where the sound source is. Respond with a bounding box [x1, y1, x2, y2] in relative image "
    "coordinates.",
    "Give the normalized bounding box [x1, y1, x2, y2] of the object in the image that makes this sound.",
    "Something in this picture is making the sound. Where is it? Answer with a box [x1, y1, x2, y2], "
    "coordinates as fractions of the image size.",
    "Find the sounding object and output its bounding box. Format: [x1, y1, x2, y2], normalized to the "
    "image, two decimals.",
    "Localize the source of the audio in the image with a bounding box given by its top-left and "
    "bottom-right corners in normalized coordinates.",
    "What in the image produces this sound? Reply with its box [x1, y1, x2, y2], all values between "
    "0 and 1.",
    "Match the audio to an object in the picture and give that object's bounding box [x1, y1, x2, y2], "
    "normalised to the image dimensions.",
    "Look at the image and listen. Which object is sounding? Give its bounding box in [x1, y1, x2, y2] "
    "form, relative to the image width and height.",
    "Draw a box around whatever is making this sound: [x1, y1, x2, y2], where 0 is the left or top edge "
    "of the image and 1 is the right or bottom edge.",
    "Where is the sound coming from in this picture? Answer with a bounding box [x1, y1, x2, y2] in "
    "normalized coordinates.",
    "Detect the object responsible for the sound and give its box as [x1, y1, x2, y2], scaled to the "
    "image size so that each value lies from 0 to 1.",
    "Which object do you hear? Box it with its top-left and bottom-right corners, written as "
    "[x1, y1, x2, y2] in fractions of the image size.",
)

# No fields. Every phrasing asks for times and says they are in seconds.
IGATL_INSTRUCTIONS = (
    "When does the object shown in the picture make a sound in the audio? Give the time segments in seconds.",
    "At what times can you hear the object in the image? Answer with [start, end] segments in seconds.",
    "Find when the pictured object is sounding. List the segments as [start, end] in seconds.",
    "In which parts of the audio is the object from the image audible? Give start and end times in seconds.",
    "Look at the image, then listen: when does that object make noise? Reply with time segments in seconds.",
    "Give the time intervals, in seconds, during which the object in the picture can be heard.",
    "During which seconds of the clip does the pictured object produce sound? Answer as [start, end] pairs.",
    "Locate the sound of the object shown in the image in time. Give each segment as [start, end] in seconds.",
    "When is the event in the picture heard in the audio? Answer with segments in seconds.",
    "Tell me the start and end times, in seconds, of every moment the object in the image is sounding.",
    "Which time segments of the audio belong to the object in the picture? Use seconds.",
    "The image shows a sound source. When does it sound in the clip? Give [start, end] in seconds for "
    "each segment.",
    "Mark the times, in seconds, at which the audio contains the sound of the pictured object.",
    "At which points in the recording does the object from the image make a sound? Answer with segments "
    "in seconds.",
    "Find every time span, in seconds, in which you can hear the object shown in the image.",
    "When do you hear the thing in this picture? Give the segments as [start, end] in seconds.",
    "Temporally localize the pictured event in the audio. Output its segments in seconds.",
    "From when to when does the object in the image sound? Answer in seconds, one [start, end] per segment.",
    "In this audio, when is the object from the picture audible? List time segments in seconds.",
    "Listen to the clip and tell me when the pictured object makes its sound, as time segments in seconds.",
    "Identify the segments of the audio, in seconds, where the object shown in the picture is sounding.",
    "Over which seconds of the audio does the event in the image happen? Give [start, end] segments.",
)

# Field: statement. Every phrasing asks for true/false or yes/no.
AVFC_INSTRUCTIONS = (
    "Is the following statement true or false? {statement}",
    "{statement} True or false?",
    "True or false: {statement}",
    "Look at the image and listen to the audio. Is this statement correct? {statement} Answer yes or no.",
    "Check this claim against the picture and the sound: {statement} Is it true?",
    "Statement: {statement} Is it true or false?",
    "Based on what you see and hear, is the following true? {statement}",
    "{statement} Is that right? Answer yes or no.",
    "Decide whether this is true or false, given the image and the audio: {statement}",
    "Verify the statement using both the picture and the sound. {statement} Answer yes or no.",
    "Does the following hold for this image and audio? {statement} Answer yes or no.",
    "Fact check: {statement} True or false?",
    "Here is a claim about the clip: {statement} Is it true? Answer yes or no.",
    "Consider the image and the sound together. {statement} Yes or no?",
    "{statement} Does this match what you see and hear? Answer yes or no.",
    "Read the claim and say whether it is true or false. Claim: {statement}",
    "Judge this statement as true or false: {statement}",
    "Given the picture and the audio, answer yes or no: {statement}",
    "{statement} Is this true for the picture and the sound you hear?",
    "Audio-visual fact check. {statement} Reply yes if it is true and no if it is not.",
    "Is this description accurate? {statement} Answer yes or no.",
    "Tell me whether the following is true or false. {statement}",
)

# Field: question. Some phrasings are the question alone or nearly so.
AVQA_INSTRUCTIONS = (
    "{question}",
    "Q: {question}",
    "Question: {question}",
    "{question} Answer briefly.",
    "Look and listen: {question} Answer briefly.",
    "{question} Answer with a word or a short phrase.",
    "Based on the image and the audio, answer this question: {question}",
    "Watch the picture and listen to the sound. {question}",
    "{question} Use both what you see and what you hear.",
    "Answer the question about this scene: {question}",
    "{question} Reply in one word if you can.",
    "Here is a question about the picture and its sound. {question}",
    "{question} Keep the answer short.",
    "Please answer: {question}",
    "Look at the image, listen to the audio, and answer. {question}",
    "{question} Give a short answer.",
    "Consider what you see and hear. {question}",
    "Answer concisely. {question}",
    "About this audio-visual scene: {question}",
    "{question} Answer with as few words as possible.",
    "I have a question about this clip. {question}",
    "{question} Base your answer on the image and the sound.",
)

# No fields.
AVC_INSTRUCTIONS = (
    "Describe what you see and hear in one sentence.",
    "Write a one-sentence caption for this image and its sound.",
    "What is happening here? Describe both the picture and the audio briefly.",
    "Give a short description of the scene, covering what is visible and what is audible.",
    "Caption this audio-visual clip.",
    "Summarize the image and the sound in a single sentence.",
    "Describe this scene, using both the picture and the audio.",
    "Tell me briefly what you see and what you hear.",
    "Write a caption that describes the sights and sounds of this clip.",
    "In one sentence, what is going on in this picture and audio?",
    "Describe the audio-visual content of this clip.",
    "Look and listen, then describe the scene in a sentence.",
    "Provide a brief caption covering both the visual and the auditory content.",
    "What do you see and hear? Answer in one sentence.",
    "Give a concise description of the events shown and heard.",
    "Explain what is happening, based on the image and the sound.",
    "Write a short audio-visual caption for this scene.",
    "Describe the scene and the sounds in it.",
    "Briefly caption what is happening in the image and the audio.",
    "Combine what you see and what you hear into one descriptive sentence.",
    "How would you describe this clip to someone who can neither see nor hear it?",
    "Sum up this scene, its sights and its sounds, in one sentence.",
)

# No fields. Audio only: no phrasing mentions an image.
CAPTION_AUDIO_INSTRUCTIONS = (
    "Describe the sound.",
    "What do you hear? Describe it in one sentence.",
    "Write a caption for this audio.",
    "Describe the audio clip briefly.",
    "Give a one-sentence description of what is happening in the audio.",
    "Listen and describe what you hear.",
    "Caption this sound recording.",
    "What is going on in this recording? Answer in a sentence.",
    "Summarize the audio in one sentence.",
    "Describe the sounds in this clip.",
    "Write a short description of the audio.",
    "Tell me what this recording sounds like.",
    "Provide a brief caption for the audio.",
    "What can be heard in this clip? Describe it.",
    "In one sentence, describe the sound events in the audio.",
    "Give a concise caption of the sounds you hear.",
    "Describe this audio as if you were writing a caption for it.",
    "Explain what is happening, judging only by the sound.",
    "Write one sentence describing the audio content.",
    "Listen carefully and caption the audio.",
    "What sounds does this recording contain? Describe them briefly.",
    "Briefly describe the acoustic scene.",
)

# No fields.
CLASSIFY_INSTRUCTIONS = (
    "What is the sound in this clip? Name its class.",
    "Classify the sound you hear.",
    "Which sound class does this audio belong to?",
    "What kind of sound is this? Give its category.",
    "Name the category of the sound.",
    "Identify the sound event in this clip.",
    "Listen and tell me which class of sound this is.",
    "What sound event is this? Answer with its class.",
    "Give the class label of the audio.",
    "Which category best describes this sound?",
    "What is the source of this sound? Answer with a class name.",
    "Label the sound in this recording.",
    "What sound do you hear? Reply with the class only.",
    "Classify this audio clip into a sound category.",
    "What type of sound is in this clip?",
    "Tell me the class of the sound event.",
    "Recognize the sound and name its class.",
    "Which sound category is this recording from?",
    "What is this sound? Give a short class name.",
    "Assign a class label to the sound you hear.",
    "Name the sound event in this audio.",
    "What class of sound does this clip contain?",
)

INSTRUCTIONS = {
    "arig": ARIG_INSTRUCTIONS,
    "igatl": IGATL_INSTRUCTIONS,
    "avfc": AVFC_INSTRUCTIONS,
    "avqa": AVQA_INSTRUCTIONS,
    "avc": AVC_INSTRUCTIONS,
    "caption_audio": CAPTION_AUDIO_INSTRUCTIONS,
    "classify": CLASSIFY_INSTRUCTIONS,
}

# ---------------------------------------------------------------------------------------------
# Answers (assistant text). No digits of their own: the only numbers are the grounding text.
# ---------------------------------------------------------------------------------------------

# Fields: label, boxes (formatted by meerkat.grounding.format_boxes).
ARIG_ANSWERS = (
    "The {label} at {boxes}.",
    "The {label} is at {boxes}.",
    "The sound comes from the {label} at {boxes}.",
    "It is the {label}, located at {boxes}.",
    "The sounding object is the {label}: {boxes}.",
    "You can hear the {label} at {boxes}.",
)

# Field: boxes.
ARIG_NOLABEL_ANSWERS = (
    "It is at {boxes}.",
    "The sounding object is at {boxes}.",
    "The sound comes from {boxes}.",
    "Its bounding box is {boxes}.",
    "You can find it at {boxes}.",
)

# Fields: label, segments (formatted by meerkat.grounding.format_segments).
IGATL_ANSWERS = (
    "The {label} sounds during {segments} seconds.",
    "The {label} can be heard at {segments} seconds.",
    "You hear the {label} during {segments} seconds.",
    "The {label} makes a sound in these segments, in seconds: {segments}.",
    "Segments where the {label} is audible, in seconds: {segments}.",
)

# Field: segments.
IGATL_NOLABEL_ANSWERS = (
    "It sounds during {segments} seconds.",
    "The sound occurs during {segments} seconds.",
    "In seconds: {segments}.",
    "It can be heard at {segments} seconds.",
    "The object is audible during {segments} seconds.",
)

# Field: reason (an AVFC_REASONS sentence). The reason comes first and the verdict last, so that a model
# answers by stating what it sees and hears before it judges the statement against it — a small model
# trained on verdict-first answers ("Yes."/"No.") only learned to always say "No" (issue 8). True answers
# never say "false" or "not", false ones never "true" or "yes", so the last verdict word decides.
AVFC_TRUE_ANSWERS = (
    "{reason} So the statement is true.",
    "{reason} So yes, it is true.",
    "{reason} That makes the statement true.",
    "{reason} So the statement is correct.",
    "{reason} So yes, that matches the image and the sound.",
    "{reason} So it is true.",
)

AVFC_FALSE_ANSWERS = (
    "{reason} So the statement is false.",
    "{reason} So no, it is false.",
    "{reason} That makes the statement false.",
    "{reason} So the statement is incorrect.",
    "{reason} So no, that does not match the image and the sound.",
    "{reason} So it is false.",
)

# Field: answer. The bare answer first; the wrappers are short fixed prefixes that eval can strip.
AVQA_ANSWERS = (
    "{answer}",
    "{answer}.",
    "The answer is {answer}.",
    "Answer: {answer}",
    "I'd say {answer}.",
)

# Field: caption, always verbatim (captions are scored with BLEU/ROUGE/CIDEr).
AVC_ANSWERS = (
    "{caption}",
    "Description: {caption}",
    "What I see and hear: {caption}",
    "In short: {caption}",
    "Here is what happens: {caption}",
)

CAPTION_AUDIO_ANSWERS = (
    "{caption}",
    "What I hear: {caption}",
    "Sound description: {caption}",
    "In this recording: {caption}",
    "Here is what it sounds like: {caption}",
)

# Field: label.
CLASSIFY_ANSWERS = (
    "{label}",
    "This is {label}.",
    "It sounds like {label}.",
    "The sound class is {label}.",
    "Class: {label}.",
    "I would classify it as {label}.",
)

ANSWERS = {
    "arig": ARIG_ANSWERS,
    "arig_nolabel": ARIG_NOLABEL_ANSWERS,
    "igatl": IGATL_ANSWERS,
    "igatl_nolabel": IGATL_NOLABEL_ANSWERS,
    "avfc_true": AVFC_TRUE_ANSWERS,
    "avfc_false": AVFC_FALSE_ANSWERS,
    "avqa": AVQA_ANSWERS,
    "avc": AVC_ANSWERS,
    "caption_audio": CAPTION_AUDIO_ANSWERS,
    "classify": CLASSIFY_ANSWERS,
}

# ---------------------------------------------------------------------------------------------
# AVFC statements, one tuple per fact type 1-4
# ---------------------------------------------------------------------------------------------

# Type 1, the object makes the sound. Field: label.
AVFC_SOUND_SOURCE_STATEMENTS = (
    "The sound is made by the {label}.",
    "The {label} is what makes this sound.",
    "This sound comes from the {label}.",
    "What you hear is the {label}.",
    "The {label} is the source of the sound.",
    "The audio is produced by the {label}.",
    "The noise in the clip is caused by the {label}.",
    "It is the {label} that is making this sound.",
    "The {label} produces the sound in this clip.",
)

# Type 2, the sounding object is in the image. Field: label.
AVFC_VISIBLE_STATEMENTS = (
    "The {label} you can hear is visible in the picture.",
    "The {label} that makes the sound appears in the image.",
    "You can see the sounding {label} in the picture.",
    "The image shows the {label} that is heard in the audio.",
    "The {label} heard in the clip is also in the picture.",
    "The picture contains the {label} you hear.",
    "The {label} whose sound you hear is shown in the image.",
    "The {label} making the noise can be seen in the photo.",
)

# Type 3, it sounds within a segment. Fields: label, segment (formatted by format_segment).
AVFC_SEGMENT_STATEMENTS = (
    "The {label} is heard between {segment} seconds.",
    "The {label} makes a sound during {segment} seconds.",
    "You can hear the {label} within {segment} seconds.",
    "The {label} sounds in the segment {segment}, in seconds.",
    "Between {segment} seconds, the {label} is audible.",
    "During {segment} seconds of the audio, the {label} can be heard.",
    "The sound of the {label} occurs within {segment} seconds.",
    "In the time span {segment} seconds, the {label} makes a sound.",
)

# Type 4, the audio matches the boxed object. Field: box (formatted by format_box).
AVFC_BOX_STATEMENTS = (
    "The sound comes from the object at {box}.",
    "The object in the box {box} is making this sound.",
    "What you hear is produced by the object at {box}.",
    "The sounding object is located at {box}.",
    "The audio matches the object inside {box}.",
    "The object within {box} is the source of the sound.",
    "This sound is made by whatever is at {box}.",
    "The region {box} contains the object you hear.",
)

AVFC_STATEMENTS = {
    1: AVFC_SOUND_SOURCE_STATEMENTS,
    2: AVFC_VISIBLE_STATEMENTS,
    3: AVFC_SEGMENT_STATEMENTS,
    4: AVFC_BOX_STATEMENTS,
}

# What the answer states before its verdict, per fact type: the facts the statement is checked against.
# Fields: 1 label; 2 objects (what the shown picture holds, "the dog and the cat"); 3 label, segments (all
# of them, by format_segments); 4 label, boxes (format_boxes).
AVFC_REASONS = {
    1: ("The sound is made by the {label}.", "What you hear is the {label}.", "The {label} makes this sound.",
        "This sound comes from the {label}."),
    2: ("The picture shows {objects}.", "The image contains {objects}.", "In the picture there is {objects}.",
        "What the image shows is {objects}."),
    3: ("The {label} is heard during {segments} seconds.", "The {label} sounds at {segments} seconds.",
        "You can hear the {label} within {segments} seconds.", "The sound of the {label} occurs during {segments} seconds."),
    4: ("The sound comes from the {label} at {boxes}.", "The {label} making the sound is at {boxes}.",
        "The sounding object is the {label} at {boxes}.", "What you hear is the {label}, located at {boxes}."),
}


def _fill(phrasings: tuple[str, ...], what: str, rng: random.Random, fields: dict[str, str]) -> str:
    """One phrasing picked by `rng`, formatted with `fields`; a missing field is a ValueError naming it."""
    phrasing = rng.choice(phrasings)
    try:
        return phrasing.format(**fields)
    except KeyError as e:
        name = e.args[0]
        raise ValueError(f"{what} needs the field {name!r}; pass it as a keyword, e.g. {name}=...") from e


def instruction(task: str, rng: random.Random, **fields: str) -> str:
    """User text for `task`, without media placeholders; avfc needs `statement`, avqa `question`."""
    if task not in INSTRUCTIONS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return _fill(INSTRUCTIONS[task], f"the instruction for task {task!r}", rng, fields)


def answer(kind: str, rng: random.Random, **fields: str) -> str:
    """Assistant text of answer `kind` (see ANSWERS), with grounding text and captions kept verbatim."""
    if kind not in ANSWERS:
        raise ValueError(f"unknown answer kind {kind!r}; valid kinds: {', '.join(ANSWERS)}")
    return _fill(ANSWERS[kind], f"the answer of kind {kind!r}", rng, fields)


def avfc_reason(fact_type: int, rng: random.Random, **fields: str) -> str:
    """The sentence an AVFC answer states before its verdict (see AVFC_REASONS for the fields)."""
    if fact_type not in AVFC_REASONS:
        raise ValueError(f"unknown AVFC fact type {fact_type!r}; valid types: {', '.join(map(str, AVFC_REASONS))}")
    return _fill(AVFC_REASONS[fact_type], f"the AVFC reason of type {fact_type}", rng, fields)


def avfc_statement(fact_type: int, rng: random.Random, **fields: str) -> str:
    """An AVFC statement of type 1 (source: label), 2 (visible: label), 3 (segment: label, segment)
    or 4 (box: box)."""
    if fact_type not in AVFC_STATEMENTS:
        valid = ", ".join(str(t) for t in AVFC_STATEMENTS)
        raise ValueError(f"unknown AVFC fact type {fact_type!r}; valid types: {valid}")
    return _fill(AVFC_STATEMENTS[fact_type], f"the AVFC statement of type {fact_type}", rng, fields)
