/**
 * Clinical vocabulary for the INDICATION and distractor text: histories, procedures, medications
 * and symptoms. It is never part of the labelled sections' mentions; it widens the lexicon so the
 * pretraining corpus and the learned WordPiece vocabulary look like clinical text, not a template.
 */

const split = (s: string): string[] => s.split("|").map((t) => t.trim()).filter((t) => t);

export const HISTORIES = split(`
COPD|ESRD on hemodialysis|s/p CABG|atrial fibrillation|cirrhosis|HIV|diabetes mellitus|hypertension|
asthma|pulmonary fibrosis|sarcoidosis|aortic stenosis s/p TAVR|pulmonary embolism|renal transplant|
alcohol use disorder|dementia|Parkinson disease|obstructive sleep apnea|morbid obesity|
coronary artery disease|stroke|chronic kidney disease|pancreatitis|GI bleed|rheumatoid arthritis|
scleroderma|cystic fibrosis|myasthenia gravis|hyperlipidemia|hypothyroidism|multiple myeloma|
chronic lymphocytic leukemia|acute myeloid leukemia|prostate cancer|colon cancer|pancreatic cancer|
esophageal cancer|gastric cancer|ovarian cancer|bladder cancer|head and neck cancer|
hepatocellular carcinoma|mesothelioma|small cell lung cancer|thymoma|sickle cell disease|
systemic lupus erythematosus|granulomatosis with polyangiitis|amyloidosis|hemochromatosis|
hepatitis C|hepatitis B|tuberculosis|latent tuberculosis|bronchiectasis|interstitial lung disease|
pulmonary hypertension|mitral regurgitation|tricuspid regurgitation|hypertrophic cardiomyopathy|
dilated cardiomyopathy|endocarditis|pericarditis|peripheral vascular disease|abdominal aortic aneurysm|
thoracic aortic aneurysm|aortic dissection|deep vein thrombosis|anemia|thrombocytopenia|neutropenia|
bone marrow transplant|liver transplant|lung transplant|heart transplant|kidney stones|
benign prostatic hyperplasia|urinary tract infection|diverticulitis|Crohn disease|ulcerative colitis|
celiac disease|gastroesophageal reflux|Barrett esophagus|achalasia|hiatal hernia repair|
schizophrenia|bipolar disorder|depression|anxiety|opioid use disorder|tobacco use|former smoker|
current smoker|seizure disorder|multiple sclerosis|amyotrophic lateral sclerosis|spinal cord injury|
quadriplegia|cerebral palsy|Down syndrome|Alzheimer disease|traumatic brain injury|subdural hematoma|
intracranial hemorrhage|glioblastoma|osteoporosis|osteoarthritis|gout|psoriasis|sjogren syndrome|
polymyalgia rheumatica|giant cell arteritis|vasculitis|IgA nephropathy|nephrotic syndrome|
polycystic kidney disease|adrenal insufficiency|Cushing syndrome|hyperparathyroidism|
Graves disease|pheochromocytoma|carcinoid tumor|melanoma|basal cell carcinoma|squamous cell carcinoma|
`);

export const PROCEDURES = split(`
CABG|TAVR|mitral valve repair|aortic valve replacement|pacemaker placement|ICD placement|
PCI with stent|cardiac catheterization|ablation for atrial fibrillation|left lobectomy|right lobectomy|
wedge resection|pneumonectomy|VATS|thoracentesis|paracentesis|bronchoscopy|EBUS biopsy|
mediastinoscopy|esophagectomy|Whipple procedure|cholecystectomy|appendectomy|colectomy|
gastric bypass|sleeve gastrectomy|hip replacement|knee replacement|spinal fusion|laminectomy|
craniotomy|tracheostomy|PEG placement|TIPS|liver biopsy|kidney biopsy|mastectomy|lumpectomy|
radiation therapy|chemotherapy|immunotherapy|stem cell transplant|dialysis catheter placement|
AV fistula creation|carotid endarterectomy|EVAR|femoral bypass|amputation|hernia repair|
nephrectomy|prostatectomy|hysterectomy|cystectomy|thyroidectomy|parathyroidectomy|splenectomy|
`);

export const MEDICATIONS = split(`
warfarin|apixaban|rivaroxaban|heparin drip|enoxaparin|aspirin|clopidogrel|furosemide|torsemide|
metoprolol|carvedilol|lisinopril|losartan|amiodarone|digoxin|diltiazem|atorvastatin|insulin|
metformin|prednisone|methotrexate|tacrolimus|mycophenolate|cyclosporine|rituximab|pembrolizumab|
nivolumab|vancomycin|piperacillin-tazobactam|cefepime|ceftriaxone|azithromycin|levofloxacin|
meropenem|linezolid|fluconazole|acyclovir|oseltamivir|albuterol|tiotropium|home oxygen|
levothyroxine|pantoprazole|omeprazole|gabapentin|oxycodone|haloperidol|quetiapine|lorazepam|
norepinephrine|vasopressin|propofol|fentanyl|midazolam|dexmedetomidine|
`);

export const SYMPTOMS = split(`
shortness of breath|dyspnea on exertion|cough|fever and chills|hypoxia|chest pain|hemoptysis|
tachycardia|altered mental status|weakness|syncope|desaturation|wheezing|abdominal pain|
nausea and vomiting|leg swelling|tachypnea|pleuritic chest pain|increasing oxygen requirement|
worsening dyspnea|palpitations|hypotension|new oxygen requirement|fatigue|orthopnea|
paroxysmal nocturnal dyspnea|night sweats|weight loss|anorexia|dysphagia|odynophagia|hoarseness|
stridor|hiccups|back pain|flank pain|diaphoresis|lightheadedness|dizziness|confusion|lethargy|
somnolence|agitation|delirium|fall|rigors|malaise|myalgias|sore throat|rhinorrhea|sputum production|
purulent sputum|hematemesis|melena|hematochezia|jaundice|ascites|anasarca|oliguria|
acute kidney injury|hyperkalemia|hyponatremia|lactic acidosis|elevated troponin|elevated BNP|
positive blood cultures|positive COVID test|influenza|sepsis|bacteremia|febrile neutropenia|
`);

export const QUESTIONS = split(`
eval for pneumonia|r/o pneumothorax|assess ETT placement|evaluate for interval change|?CHF|
eval for effusion|line placement|assess for acute process|eval for infiltrate|
please assess tube position|r/o acute cardiopulmonary process|evaluate for fluid overload|preop|
eval for fracture|assess NG tube placement|confirm PICC position|post-procedure check|
evaluate after thoracentesis|eval for aspiration|assess for mass|follow-up of known findings|
evaluate response to diuresis|assess lung expansion after chest tube removal|
`);
