/** The 14 CheXpert labels in the official column order of mimic-cxr-2.0.0-chexpert.csv. */
export const CHEXPERT_LABELS = [
  "Atelectasis",
  "Cardiomegaly",
  "Consolidation",
  "Edema",
  "Enlarged Cardiomediastinum",
  "Fracture",
  "Lung Lesion",
  "Lung Opacity",
  "No Finding",
  "Pleural Effusion",
  "Pleural Other",
  "Pneumonia",
  "Pneumothorax",
  "Support Devices",
] as const;
