"""What the synthetic subject says: an original story, one sentence per item, and a held-out sentence.

The story is about five minutes of speech in the joe voice, so `thkit synth --seconds` can ask for up
to `MAX_SECONDS` (three minutes and more) of distinct sentences. Every word is in pocketsphinx's
CMU dictionary, so phone alignment needs no guessing (a test checks this). The held-out sentence
is never part of the story: the demo speaks it to show the subject saying something it never said
in training.
"""

from __future__ import annotations

STORY: tuple[str, ...] = (
    "Before the sun came up, Martha climbed the hundred and twelve steps of the old lighthouse on Gull Point.",
    "She carried a lamp in one hand and a mug of black coffee in the other.",
    "At the top, the great lens was still turning slowly, throwing its long beam across the water.",
    "She watched it pass over the rocks, the harbor, and the fishing boats that were already moving out to sea.",
    "When the sky grew pale, she switched off the light and wrote the time in her logbook.",
    "Every morning began this way, and she liked it that way.",
    "After breakfast she walked down to the shore to check the weather.",
    "The wind came from the west, cool and steady, and the waves broke in bright white lines along the beach.",
    "A pair of gulls argued over a crab shell, and a seal lifted its head to look at her.",
    "She made a note of the clouds, the pressure, and the height of the tide.",
    "Then she went back up the path to start her work.",
    "The lens had to be cleaned by hand.",
    "It was made of hundreds of glass prisms, each one set in a frame of polished brass.",
    "Martha wiped them one by one with a soft cloth, humming an old song her father used to sing.",
    "He had kept this light for thirty years before her, and he had taught her that a clean lens could be seen from twice as far.",
    "By noon the glass was shining, and the brass was bright enough to show her face.",
    "She ate lunch on the balcony, a simple meal of bread, cheese, and apples.",
    "From up there she could see the whole bay, from the mouth of the river to the lonely island in the north.",
    "Sometimes a ship would pass on the horizon, so small that it looked like a toy.",
    "In the afternoon she repaired things.",
    "The door of the oil store would not close properly, so she took it off its hinges and planed the bottom edge.",
    "A window in the cottage had cracked in a storm, and she measured it for new glass.",
    "She painted the railing on the lower stairs, because the salt air ate away at the metal faster than anyone would believe.",
    "Her radio played quiet music while she worked, and now and then a voice would read the shipping forecast.",
    "Around four in the afternoon, the supply boat arrived with letters, fuel, and a box of groceries.",
    "The skipper was a cheerful man named Peter, who always brought news from the mainland.",
    "He told her that the bakery had a new oven, that the mayor had broken his arm, and that a big storm might come at the end of the week.",
    "She thanked him, and they carried the boxes up the hill together.",
    "Before he left, he asked whether she was ever lonely out here.",
    "She laughed and said that the sea was never the same two days in a row, so there was always something to watch.",
    "When the boat had gone, she sat down at the kitchen table and read her letters.",
    "One was from her brother, who lived in a busy city far away.",
    "He wrote about tall buildings, crowded trains, and the noise that never stopped, even at night.",
    "She smiled, because she could not imagine living like that.",
    "In the evening, the light became gold, then orange, then a deep purple.",
    "Martha climbed the stairs again, checked the oil, and wound the heavy clock that turned the lens.",
    "At sunset she lit the lamp, and the beam swept out across the dark water.",
    "She stood for a while and counted the flashes, two short and one long, the signal that told every sailor where they were.",
    "Far out, a fishing boat answered with a blink of its own lamp, and she waved, even though nobody could see her.",
    "Later, she made soup with potatoes, onions, and a piece of smoked fish.",
    "She ate by the stove and listened to the wind moving around the tower.",
    "Before bed she went up one last time to make sure the light was steady.",
    "The stars were out by then, thousands of them, and the moon made a silver road across the bay.",
    "She wrote the final entry of the day in her logbook.",
    "Wind from the west, sea moderate, visibility good, all ships safe.",
    "Then she went to sleep, knowing that the light would keep watch until morning.",
    "At the end of the week, the storm arrived just as Peter had promised.",
    "The morning was strangely calm, with a heavy yellow sky and not a single bird in the air.",
    "By midday, the wind had begun to moan around the gallery, and the waves were climbing the black rocks below.",
    "Martha filled every lamp, tied down the boat, and brought in the washing before it blew away.",
    "She called the harbor master on the radio and told him that the barometer was falling fast.",
    "In the afternoon the rain came sideways, hard and cold, beating on the windows like small stones.",
    "The whole tower seemed to hum, a low deep note that she could feel through the floor.",
    "She kept the light burning early, because the clouds had made the day as dark as evening.",
    "Just after six, she heard a faint call on the radio.",
    "A small boat had lost its engine near the island, and the two men on board could not see the shore.",
    "Martha gave them her position and told them to watch for the light, two short flashes and one long.",
    "For an hour she stayed by the radio, speaking calmly, while the lifeboat from the harbor searched the waves.",
    "At last a tired voice said that they had been found, cold and wet but safe.",
    "She put down the microphone and noticed that her hands were shaking.",
    "She made a pot of tea and sat by the lamp until the worst of the wind had passed.",
    "The next morning the beach was covered with seaweed, broken planks, and a single blue boot.",
    "The sky was washed clean, and the sea was as flat and bright as a mirror.",
    "Martha climbed the steps, cleaned the salt from the glass, and wrote a long entry in her book.",
    "Then, because it was that kind of day, she took her coffee to the balcony and simply watched the water.",
)

HELD_OUT_TEXT = (
    "Tomorrow the supply boat will bring fresh bread, three new candles, and a parcel of books from the library in town."
)
