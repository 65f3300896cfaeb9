"""`thkit eval`: measure rendered talking-head video against ground truth, or its lip sync alone.

One small module per job:

- `align`: load the prediction and the truth (an mp4, a dataset folder, or a run folder whose
  dataset's validation split is the truth) and pair their frames by time, or refuse;
- `image`: PSNR, SSIM, MS-SSIM per frame, on whole frames and on the face box;
- `faces`: dlib's 68 landmarks per frame (the preprocessing's tracker) and what follows from them;
- `landmarks`: LMD on the mouth and the whole face, blink error;
- `lipsync`: mouth opening against the audio envelope, and against a run's trained `sync` encoder;
- `weighted`: the measures that need pretrained networks (LPIPS, FID, LSE-D, LSE-C);
- `evaluate`: all of the above for one video, per frame and per video;
- `measure`: a video file against its truth, or a run rendered from new audio;
- `report`: the table, JSON, and report.md with plots; `command`: `thkit eval`, a hook plugin.

Importing this package imports nothing heavy: the command module is loaded each time `thkit` starts.
"""
