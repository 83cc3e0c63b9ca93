/** How the Proxmox backup provider API hands the bitmap over (`bitmap-mode`). */
export const BITMAP_MODES = ['new', 'reuse', 'none'] as const;
export type BitmapMode = (typeof BITMAP_MODES)[number];
